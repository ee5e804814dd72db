package runloop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// memExp is the experiment record of a config written as YAML.
func memExp(t *testing.T, seq int, src string) string {
	t.Helper()
	c, _, err := config.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := c.Canonical()
	id, _ := c.ID()
	e := record.Experiment{Kind: "experiment", V: 1, Study: "mem", StudyHash: "0123456789abcdef", ID: id, Seq: seq, Cycle: 1, NCycles: 1,
		RunID: id + "-c1", Backend: c.Backend, Model: c.Model, Runner: record.Runner{Type: "local"}, Config: raw}
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

// --dry-run gives each planned run a memory estimate against the GPUs it
// would get, and warns of those that will not fit.
func TestDryRunMemoryEstimate(t *testing.T) {
	ckpt := t.TempDir() // a Llama-3.2-1B-shaped checkpoint: 2 926 259 200 bytes at bf16, batch 4, 640 tokens
	cfg := `{"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
	  "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": true}`
	if err := os.WriteFile(filepath.Join(ckpt, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	llama := "model: " + ckpt + "\nbackend: %s\nmax_input_tokens: 512\nmax_output_tokens: 128\n%s\n"
	stream := memExp(t, 0, "model: llem-tiny\nn: 8\nmax_output_tokens: 32\ndataset: {input_len: 64}\nnative: {batch_size: 4}\n") +
		memExp(t, 1, fmt.Sprintf(llama, "pytorch", "pytorch: {batch_size: 4}")) +
		// vLLM keeps 256 sequences' KV cache (n 100 prompts at once): 100·640·32 KiB = 2 GB more.
		memExp(t, 2, fmt.Sprintf(llama, "vllm", "vllm: {engine: {tensor_parallel_size: 2}}")) +
		memExp(t, 3, "model: org/not-cached\nbackend: pytorch\n")
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	o := opts(t.TempDir())
	o.DryRun = true
	gib := int64(1 << 30)
	three, two := 3*gib, 2*gib
	o.GPUs = []string{"GPU-a", "GPU-b"}
	o.Host.GPUs = []record.GPU{{Index: 0, UUID: "GPU-a", MemoryTotalBytes: &three}, {Index: 1, UUID: "GPU-b", MemoryTotalBytes: &two}}
	var out, errb bytes.Buffer
	err := Run(t.Context(), o, []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if _, err := schemas.CheckNDJSON(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r record.Run
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.MemoryEstimate == nil {
			t.Fatalf("%v: %s", err, l)
		}
		m := r.MemoryEstimate
		got = append(got, fmt.Sprintf("%s total=%s gpu=%s fits=%s", r.Backend, str(m.TotalBytes), str(m.GPUMemoryBytes), str(m.Fits)))
	}
	want := []string{
		"native total=4786150 gpu=null fits=null",           // 3 478 016 + 786 432 + 521 702, on the CPU
		"pytorch total=2926259200 gpu=3221225472 fits=true", // one 3 GiB GPU
		"vllm total=4939525120 gpu=5368709120 fits=false",   // two GPUs, 90 % of 5 GiB = 4.83 GB usable
		"pytorch total=null gpu=3221225472 fits=null",       // no config.json: no estimate
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := errb.String(); strings.Count(w, "will not fit") != 1 || !strings.Contains(w, "needs about 4.6 GiB, its GPUs have 5.0 GiB") {
		t.Errorf("warnings: %s", w)
	}
}

func str[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
