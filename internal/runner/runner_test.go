package runner

import (
	"context"
	"errors"
	"testing"

	"github.com/llem/llem/internal/record"
)

type countRunner struct{ preflights, runs int }

func (c *countRunner) Name() string { return "count" }
func (c *countRunner) Preflight(context.Context, []record.Experiment) error {
	c.preflights++
	return nil
}
func (c *countRunner) Run(context.Context, Spec) (Result, error) {
	c.runs++
	return Result{ExitCode: 0}, nil
}

// TestLazy: the runner is made on first use, once; a failure to make it is
// what Preflight and Run return.
func TestLazy(t *testing.T) {
	made := 0
	inner := &countRunner{}
	l := Lazy("count", func() (Runner, error) { made++; return inner, nil })
	if l.Name() != "count" || made != 0 {
		t.Fatalf("made %d before any use", made)
	}
	if err := l.Preflight(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if res, err := l.Run(context.Background(), Spec{}); err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	if made != 1 || inner.preflights != 1 || inner.runs != 1 {
		t.Fatalf("made %d, preflights %d, runs %d", made, inner.preflights, inner.runs)
	}
	boom := errors.New("docker client: bad DOCKER_HOST")
	bad := Lazy("bad", func() (Runner, error) { return nil, boom })
	if err := bad.Preflight(context.Background(), nil); !errors.Is(err, boom) {
		t.Fatalf("preflight: %v", err)
	}
	if res, err := bad.Run(context.Background(), Spec{}); !errors.Is(err, boom) || res.ExitCode != -1 {
		t.Fatalf("run: %+v %v", res, err)
	}
}
