package serve

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/llem/llem/internal/cli"
)

func TestCommandFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Run("llem-serve", Command, []string{"--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "--max-num-batched-tokens") {
		t.Fatalf("--help: exit %d, %s", code, out.String())
	}
	for _, args := range [][]string{{"--max-num-seqs", "0"}, {"--bogus"}, {"extra"}, {"--write-timeout", "0s"}} {
		errb.Reset()
		if code := cli.Run("llem-serve", Command, args, nil, &out, &errb); code != cli.ExitUsage || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, errb.String())
		}
	}
	o := cmdOpts{Model: "no-such-preset"}
	if _, err := loadModel(&o); err == nil {
		t.Error("unknown model accepted")
	}
	o = cmdOpts{Model: "llem-tiny", Layers: 1, MaxSeqLen: 64}
	if m, err := loadModel(&o); err != nil || m.Arch.Layers != 1 || m.Arch.MaxSeqLen != 64 {
		t.Fatalf("overrides: %v", err)
	}
}

// TestRunStopsOnSignal: run serves on 127.0.0.1 until its context ends
// (SIGTERM or SIGINT in Command), then stops gracefully and returns nil:
// exit 0.
func TestRunStopsOnSignal(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	o := cmdOpts{Model: "llem-tiny", Listen: "127.0.0.1:0", MaxNumSeqs: 2, MaxBatchedTokens: 64, MaxWaiting: 4, MaxConns: 8,
		MaxBodyBytes: 1 << 20, ShutdownTimeout: testWait}
	cfg := Config{ModelName: "llem-tiny", Limits: Limits{MaxNumSeqs: 2, MaxBatchedTokens: 64, MaxWaiting: 4, MaxModelLen: 128}, MaxConns: 8}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &o, cfg, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains the rest of stderr
	addr := regexp.MustCompile(`http://([0-9.:]+)/v1`).FindStringSubmatch(line)
	if addr == nil {
		t.Fatalf("no address in %q", line)
	}
	ts := &testServer{url: "http://" + addr[1]}
	if code, body, _ := ts.post(t, "/v1/completions", `{"prompt":"hi","max_tokens":3}`); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after the signal: %v", err)
	}
}
