package runloop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
)

// cycleStream is nCfg configs × nCyc cycles in interleaved order (seq 0 is
// config 0 cycle 1, seq 1 config 1 cycle 1, …), as llem-expand orders them.
func cycleStream(nCfg, nCyc int, cfg func(c int) string) string {
	var b strings.Builder
	seq := 0
	for cy := 1; cy <= nCyc; cy++ {
		for c := 0; c < nCfg; c++ {
			e := record.Experiment{Kind: "experiment", V: 1, Study: "t", StudyHash: "0123456789abcdef",
				ID: fmt.Sprintf("%016x", 0xc0+c), Seq: seq, Cycle: cy, NCycles: nCyc,
				RunID: fmt.Sprintf("%016x-c%d", 0xc0+c, cy), Backend: "native", Model: "m",
				Runner: record.Runner{Type: "local"}, Config: json.RawMessage(cfg(c))}
			if cy > 1 && c == 0 {
				e.CycleStart, e.GapBeforeS = true, 0
			}
			l, _ := json.Marshal(e)
			b.Write(append(l, '\n'))
			seq++
		}
	}
	return b.String()
}

func nativeCfg(int) string { return `{"model":"m","backend":"native","behave":"succeed"}` }

// Every run lands in exactly one share, in both modes and for any n; by
// config, a config's cycles all land in one share, in cycle order, and the
// shares differ in size by at most one config.
func TestShardBy(t *testing.T) {
	const nCfg, nCyc = 5, 3
	stream := cycleStream(nCfg, nCyc, nativeCfg)
	for _, by := range []string{"", ShardBySeq, ShardByConfig} {
		for n := 1; n <= 7; n++ {
			count := map[string]int{}
			cfgsPer := []int{}
			for i := 1; i <= n; i++ {
				o := opts(t.TempDir())
				o.DryRun, o.Shard, o.ShardBy = true, [2]int{i, n}, by
				runs, _, code := runStream(t, o, stream)
				if code != 0 {
					t.Fatalf("%s %d/%d: exit %d", by, i, n, code)
				}
				owner := map[string]int{}
				lastCycle := map[string]int{}
				lastSeq := -1
				for _, r := range runs {
					count[r.RunID]++
					if r.Seq <= lastSeq {
						t.Errorf("%s %d/%d: seq %d after %d: a task must run its share in seq order", by, i, n, r.Seq, lastSeq)
					}
					lastSeq = r.Seq
					if by == ShardByConfig {
						if r.Cycle != lastCycle[r.ID]+1 {
							t.Errorf("config %d/%d: %s cycle %d follows cycle %d", i, n, r.ID, r.Cycle, lastCycle[r.ID])
						}
						lastCycle[r.ID] = r.Cycle
						owner[r.ID] = i
					} else if want := (i - 1); r.Seq%n != want {
						t.Errorf("seq %d/%d took seq %d", i, n, r.Seq)
					}
				}
				if by == ShardByConfig {
					for id, c := range lastCycle {
						if c != nCyc {
							t.Errorf("config %d/%d: %s has %d of %d cycles", i, n, id, c, nCyc)
						}
					}
					cfgsPer = append(cfgsPer, len(owner))
				}
			}
			if len(count) != nCfg*nCyc {
				t.Errorf("%s n=%d: %d runs over all shares, want %d", by, n, len(count), nCfg*nCyc)
			}
			for id, c := range count {
				if c != 1 {
					t.Errorf("%s n=%d: run %s in %d shares", by, n, id, c)
				}
			}
			if by == ShardByConfig {
				lo, hi := nCfg, 0
				for _, c := range cfgsPer {
					lo, hi = min(lo, c), max(hi, c)
				}
				if hi-lo > 1 {
					t.Errorf("config n=%d: configs per share %v are not balanced", n, cfgsPer)
				}
			}
		}
	}
	o := opts(t.TempDir())
	o.DryRun, o.Shard, o.ShardBy = true, [2]int{1, 2}, "hash"
	if _, _, code := runStream(t, o, stream); code != cli.ExitUsage {
		t.Errorf("--shard-by hash: exit %d, want %d", code, cli.ExitUsage)
	}
}

// A real (not dry) run of a config share executes each config's cycles in
// order, journals them, and a second session resumes without repeating one.
func TestShardByConfigRunAndResume(t *testing.T) {
	stream := cycleStream(3, 2, nativeCfg)
	out := t.TempDir()
	o := opts(out)
	o.Shard, o.ShardBy = [2]int{1, 2}, ShardByConfig
	runs, _, code := runStream(t, o, stream)
	if code != 0 || len(runs) != 4 {
		t.Fatalf("exit %d, %d runs; want 0 and 4 (configs 0 and 2, 2 cycles each)", code, len(runs))
	}
	var order []string
	for _, r := range runs {
		order = append(order, r.RunID)
	}
	want := []string{"00000000000000c0-c1", "00000000000000c2-c1", "00000000000000c0-c2", "00000000000000c2-c2"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", order, want)
	}
	o.Print = "pending"
	if got := printed(t, o, stream); got != "0" {
		t.Errorf("pending after the share ran: %s, want 0", got)
	}
	o.Print = ""
	runs, _, code = runStream(t, o, stream)
	if code != 0 || len(runs) != 4 {
		t.Fatalf("resume: exit %d, %d runs", code, len(runs))
	}
	states, oks := journalStates(t, filepath.Join(out, "t-01234567", "journal.ndjson"))
	for _, id := range want {
		if states[id] != "ok" || oks[id] != 1 {
			t.Errorf("%s: journal %s, ok %d times; want ok once", id, states[id], oks[id])
		}
	}
}

func printed(t *testing.T, o Options, stream string) string {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), o, []*record.Reader{record.NewReader(strings.NewReader(`{"kind":"other","v":1}`+"\n"+stream), "-")}, &out, &errb)
	if err != nil {
		t.Fatalf("--print %s: %v (%s)", o.Print, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// --print counts what the Slurm helpers need, creates nothing, passes no
// other record through, and reads a journal without cutting a half-written
// last line (a running llem-exec may be writing it).
func TestPrint(t *testing.T) {
	gpuCfg := func(c int) string {
		switch c {
		case 0:
			return `{"model":"m","backend":"native","behave":"succeed"}`
		case 1:
			return `{"model":"m","backend":"vllm","vllm":{"engine":{"tensor_parallel_size":2,"pipeline_parallel_size":2}}}`
		default:
			return `{"model":"m","backend":"tensorrt","tensorrt":{"tp_size":2}}`
		}
	}
	stream := cycleStream(3, 2, gpuCfg)
	out := t.TempDir()
	o := opts(out)
	for p, want := range map[string]string{"runs": "6", "configs": "3", "gpus": "4", "pending": "6"} {
		o.Print = p
		if got := printed(t, o, stream); got != want {
			t.Errorf("--print %s = %s, want %s", p, got, want)
		}
	}
	o.Shard, o.ShardBy = [2]int{1, 3}, ShardByConfig
	for p, want := range map[string]string{"runs": "2", "configs": "1", "gpus": "0"} {
		o.Print = p
		if got := printed(t, o, stream); got != want {
			t.Errorf("--shard 1/3 --shard-by config --print %s = %s, want %s", p, got, want)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("--print created %d entries under --out", len(ents))
	}
	o.Print = "bogus"
	var ob, eb bytes.Buffer
	if err := Run(context.Background(), o, []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &ob, &eb); cli.Code(err) != cli.ExitUsage {
		t.Errorf("--print bogus: %v", err)
	}

	// pending: the native config's two runs done, one failed (the worker
	// errors), then a journal cut mid-line by a writer.
	stream = cycleStream(2, 2, func(c int) string {
		return fmt.Sprintf(`{"model":"m","backend":"native","behave":%q}`, []string{"succeed", "error"}[c])
	})
	o = opts(out)
	if _, _, code := runStream(t, o, stream); code != cli.ExitSomeFailed {
		t.Fatalf("exit %d, want %d", code, cli.ExitSomeFailed)
	}
	o.Print = "pending"
	if got := printed(t, o, stream); got != "2" {
		t.Errorf("pending with 2 failed = %s, want 2", got)
	}
	o.SkipFailed = true
	if got := printed(t, o, stream); got != "0" {
		t.Errorf("pending with 2 failed and --skip-failed = %s, want 0", got)
	}
	o.SkipFailed = false
	j := filepath.Join(out, "t-01234567", "journal.ndjson")
	f, _ := os.OpenFile(j, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t":1,"op":"state","run_id":"00000000000000c0-c1","status":"runn`)
	f.Close()
	before, _ := os.ReadFile(j)
	if got := printed(t, o, stream); got != "2" {
		t.Errorf("pending with a half-written last line = %s, want 2", got)
	}
	if after, _ := os.ReadFile(j); !bytes.Equal(before, after) {
		t.Error("--print pending changed the journal")
	}
	// An ok run whose run.json is gone runs again, so it is pending.
	os.Remove(filepath.Join(out, "t-01234567", "runs", "00000000000000c0-c2", "run.json"))
	if got := printed(t, o, stream); got != "3" {
		t.Errorf("pending with a lost run.json = %s, want 3", got)
	}
}
