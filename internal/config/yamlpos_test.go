package config

import (
	"strings"
	"testing"
)

// Every kind of YAML syntax error is reported at the line a person has to
// edit (yaml.v3 itself names the line before, or the enclosing mapping).
func TestYAMLErrorPositions(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"tab in indentation", "model: x\nn: 1\nprecision: fp16\n\tbackend: pytorch\n", "t.yaml:4:1: invalid YAML: found a tab character that violates indentation"},
		{"tab after spaces", "model: x\ndecoder:\n  top_k: 5\n \ttop_p: 0.5\n", "t.yaml:4:2: invalid YAML: found a tab character"},
		{"unclosed [", "model: x\nn: 1\nsweep:\n  n: [1, 2\nexperiments: []\n", "t.yaml:4:1: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed {", "model: x\nn: {a: 1\nm: 2\n", "t.yaml:2:1: invalid YAML: did not find expected ',' or '}'"},
		{"extra ]", "model: x\nn: [1, 2]]\n", "t.yaml:2:1: invalid YAML: did not find expected key"},
		{"deeper indentation", "model: x\nsweep:\n  n: [1, 2]\n   precision: [fp16]\nname: a\n", "t.yaml:4:1: invalid YAML: did not find expected key"},
		{"shallower indentation", "model: x\nsweep:\n  n: [1, 2]\n precision: [fp16]\nname: a\n", "t.yaml:4:1: invalid YAML: did not find expected key"},
		{"indented key at top", "model: x\n  n: 1\n", "t.yaml:2:1: invalid YAML: mapping values are not allowed in this context"},
		{"list item in a mapping", "model: x\nn: 1\n- a\n", "t.yaml:3:1: invalid YAML: did not find expected key"},
		{"unclosed double quote", "model: x\nname: \"abc\nn: 3\n", "t.yaml:2:1: invalid YAML: found unexpected end of stream"},
		{"unclosed single quote", "model: x\nname: 'abc\nn: 3\n", "t.yaml:2:1: invalid YAML: found unexpected end of stream"},
		{"reserved character", "model: x\nn: 1\nm: @x\n", "t.yaml:3:1: invalid YAML: found character that cannot start any token"},
		{"two colons", "model: x\nn: a: b\n", "t.yaml:2:1: invalid YAML: mapping values are not allowed in this context"},
		{"block scalar dedent", "model: x\nn: |\n  abc\n def\n", "t.yaml:4:1: invalid YAML: did not find expected key"},
		{"unknown anchor", "model: x\nn: *foo\n", "t.yaml:2:4: invalid YAML: unknown anchor 'foo' referenced"},
		// A multi-line flow list before the error does not pull it up.
		{"after a multi-line list", "model: x\nsweep:\n  n: [1,\n      2]\n  m: : x\n", "t.yaml:5:1: invalid YAML: mapping values are not allowed in this context"},
	}
	for _, c := range cases {
		_, _, err := Parse("t.yaml", []byte(c.src))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s:\ngot  %v\nwant %s", c.name, err, c.want)
		}
	}
}
