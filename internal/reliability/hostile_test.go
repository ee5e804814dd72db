package reliability

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostileRecords: experiment records whose names try to leave --out
// (../, absolute paths, NUL, a study_hash that is a path, 10 MB names) or
// carry absurd values are refused with exit 2 and one short line naming
// <stdin>:line and the field; nothing is created inside or beside --out.
func TestHostileRecords(t *testing.T) {
	good := exp(0, "")
	cases := []struct{ name, line, field string }{
		{"run_id ../", strings.Replace(good, `"run_id":"r0000-c1"`, `"run_id":"../../x"`, 1), "run_id"},
		{"run_id absolute", strings.Replace(good, `"run_id":"r0000-c1"`, `"run_id":"/etc/x"`, 1), "run_id"},
		{"run_id NUL", strings.Replace(good, `"run_id":"r0000-c1"`, `"run_id":"a\u0000b"`, 1), "run_id"},
		{"run_id dot", strings.Replace(good, `"run_id":"r0000-c1"`, `"run_id":".."`, 1), "run_id"},
		{"run_id 300 bytes", strings.Replace(good, `"run_id":"r0000-c1"`, `"run_id":"`+strings.Repeat("a", 300)+`"`, 1), "run_id"},
		{"study ../", strings.Replace(good, `"study":"rel"`, `"study":"../x"`, 1), "study"},
		{"study absolute", strings.Replace(good, `"study":"rel"`, `"study":"/tmp"`, 1), "study"},
		{"study 10 MB", strings.Replace(good, `"study":"rel"`, `"study":"`+strings.Repeat("s", 10<<20)+`"`, 1), "study"},
		{"study_hash path", strings.Replace(good, `"study_hash":"`+studyHash+`"`, `"study_hash":"/../../x/../../y"`, 1), "study_hash"},
		{"study_hash short", strings.Replace(good, `"study_hash":"`+studyHash+`"`, `"study_hash":"0123"`, 1), "study_hash"},
		{"seq 1e400", strings.Replace(good, `"seq":0`, `"seq":1e400`, 1), "seq"},
		{"line of 20 MB", `{"kind":"experiment","x":"` + strings.Repeat("x", 20<<20) + `"}` + "\n", "line longer than"},
	}
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	for _, c := range cases {
		r := run(t, c.line, nil, execBin, execArgs(out)...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2", c.name, r.code)
		}
		oneLine(t, r, "llem-exec", "<stdin>:1", c.field)
		if r.maxRSS > 512<<10 {
			t.Errorf("%s: %d MiB of memory", c.name, r.maxRSS>>10)
		}
	}
	var made []string
	filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if p != parent {
			made = append(made, p)
		}
		return nil
	})
	if len(made) > 0 {
		t.Errorf("hostile records created %v", made)
	}
	figure(t, map[string]any{"inputs": len(cases), "escaped": 0, "ok": !t.Failed()})
}

// TestPlantedSymlinks: links planted in a study directory before llem-exec
// runs (a run's events.ndjson and a run directory pointing outside, a
// journal, a lock and a runs/ that are links) are never written through;
// the first two are replaced, the others refused with a clear line.
func TestPlantedSymlinks(t *testing.T) {
	outside := t.TempDir()
	precious := filepath.Join(outside, "precious.txt")
	os.WriteFile(precious, []byte("precious\n"), 0o644)
	os.MkdirAll(filepath.Join(outside, "dir"), 0o755)
	os.WriteFile(filepath.Join(outside, "dir", "keep"), []byte("keep\n"), 0o644)

	out := t.TempDir()
	dir := filepath.Join(out, studySub)
	os.MkdirAll(filepath.Join(dir, "runs", "r0000-c1"), 0o755)
	os.Symlink(precious, filepath.Join(dir, "runs", "r0000-c1", "events.ndjson"))
	os.Symlink(filepath.Join(outside, "dir"), filepath.Join(dir, "runs", "r0001-c1"))
	r := run(t, exp(0, "")+exp(1, ""), nil, execBin, execArgs(out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	checkComplete(t, r.stdout, dir, 2)
	for _, p := range []string{filepath.Join(dir, "runs", "r0000-c1", "events.ndjson"), filepath.Join(dir, "runs", "r0001-c1")} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s is still a link (%v)", p, err)
		}
	}
	var msgs []string
	for _, name := range []string{"journal.ndjson", "lock", "runs"} {
		out := t.TempDir()
		dir := filepath.Join(out, studySub)
		os.MkdirAll(dir, 0o755)
		target := precious
		if name == "runs" {
			target = filepath.Join(outside, "dir")
		}
		os.Symlink(target, filepath.Join(dir, name))
		r := run(t, exp(0, ""), nil, execBin, execArgs(out)...)
		if r.code == 0 {
			t.Errorf("%s as a symlink: exit 0", name)
		}
		msgs = append(msgs, oneLine(t, r, "llem-exec", filepath.Join(dir, name)))
	}
	if b, _ := os.ReadFile(precious); string(b) != "precious\n" {
		t.Errorf("the file outside was written: %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "dir", "keep")); err != nil || string(b) != "keep\n" {
		t.Errorf("the directory outside was touched: %q %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Join(outside, "dir"))
	if len(ents) != 1 {
		t.Errorf("files appeared in the directory outside: %v", ents)
	}
	figure(t, map[string]any{"links": 5, "written_through": 0, "errors": msgs, "ok": !t.Failed()})
}

// TestHostileStudies feeds llem-expand an alias bomb, deep nesting, huge
// numbers and strings, NUL bytes and binary garbage: each is exit 2 with a
// one-line positioned error, in bounded time and memory.
func TestHostileStudies(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	for i, p := 'b', 'a'; i <= 'k'; i, p = i+1, i {
		bomb += string(i) + ": &" + string(i) + " [*" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + ", *" + string(p) + "]\n"
	}
	bomb += "model: *k\n"
	cases := map[string]string{
		"alias bomb":   bomb,
		"deep nesting": "model: m\npytorch: {passthrough_kwargs: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}\n",
		"huge number":  "model: m\nn: 1" + strings.Repeat("0", 5000) + "\n",
		"huge string":  "model: " + strings.Repeat("m", 20<<20) + "\n",
		"huge key":     strings.Repeat("k", 1<<20) + ": 1\nmodel: m\n",
		"NUL bytes":    "model: m\x00\x00\nn: 3\n",
		"garbage":      "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
	}
	dir := t.TempDir()
	var worst time.Duration
	var worstRSS int64
	for name, src := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		os.WriteFile(p, []byte(src), 0o644)
		r := run(t, "", nil, expandBin, p)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%.300s", name, r.code, r.stderr)
		}
		first := strings.SplitN(r.stderr, "\n", 2)[0]
		if !strings.Contains(first, filepath.Base(p)+":") || len(first) > 600 || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: first stderr line %.300q does not name the file and position", name, first)
		}
		// CPU time, not wall time: a busy machine makes the one longer,
		// not the other; an input that blows up costs far more than 10 s.
		if r.cpu > 10*time.Second || r.maxRSS > 1<<20 {
			t.Errorf("%s: %s CPU, %d MiB", name, r.cpu, r.maxRSS>>10)
		}
		worst, worstRSS = max(worst, r.cpu), max(worstRSS, r.maxRSS)
	}
	figure(t, map[string]any{"inputs": len(cases), "slowest_cpu_s": worst.Seconds(), "max_rss_mib": worstRSS >> 10, "ok": !t.Failed()})
}

// TestSecrets runs a study with HF_TOKEN and HUGGING_FACE_HUB_TOKEN set to
// a fresh canary through llem-exec (local runner, a sampler program, a
// baseline, ok and failed runs, a dry run) and llem-aggregate, checks the
// worker did receive the token, and greps every file written and every
// stream for the canary. (The docker runner's container definition is
// checked by internal/runner/docker's TestRunInterrupt: the token is in
// the container's Env, where Docker needs it, and nowhere else.)
func TestSecrets(t *testing.T) {
	b := make([]byte, 12)
	rand.Read(b)
	canary := "hf_CANARY" + hex.EncodeToString(b)
	env := []string{"HF_TOKEN=" + canary, "HUGGING_FACE_HUB_TOKEN=" + canary + "x"}
	out := t.TempDir()
	stream := exp(0, `"behave":"env"`) + exp(1, `"behave":"error"`) + exp(2, `"behave":"crash"`)
	args := append(execArgs(out), "--sampler-cmd", sampleBin+" --sources estimate --interval 10ms -o {}", "--baseline", "200ms")
	r := run(t, stream, env, execBin, args...)
	dry := run(t, stream, env, execBin, append(args, "--dry-run")...)
	agg := run(t, r.stdout, env, aggBin)
	help := run(t, "", env, execBin, "--help")
	streams := map[string]string{"llem-exec stdout": r.stdout, "llem-exec stderr": r.stderr, "dry-run stdout": dry.stdout,
		"dry-run stderr": dry.stderr, "llem-aggregate stdout": agg.stdout, "llem-aggregate stderr": agg.stderr, "--help": help.stdout + help.stderr}
	leaks := 0
	for name, s := range streams {
		if strings.Contains(s, canary) {
			leaks++
			t.Errorf("the token appears in %s", name)
		}
	}
	files, size := 0, int64(0)
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, _ := os.ReadFile(p)
		files++
		size += int64(len(b))
		if strings.Contains(string(b), canary) {
			leaks++
			t.Errorf("the token appears in %s", p)
		}
		return nil
	})
	wl, _ := os.ReadFile(filepath.Join(out, studySub, "runs", "r0000-c1", "worker.log"))
	if !strings.Contains(string(wl), "HF_TOKEN set: true, length ") {
		t.Errorf("the worker did not receive HF_TOKEN (worker.log %q)", wl)
	}
	if files < 10 {
		t.Errorf("only %d files written; the study did not run", files)
	}
	figure(t, map[string]any{"files_scanned": files, "bytes_scanned": size, "streams_scanned": len(streams), "leaks": leaks, "ok": !t.Failed()})
}
