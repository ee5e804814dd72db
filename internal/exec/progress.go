package exec

import (
	"fmt"
	"io"
	"time"

	"github.com/llem/llem/internal/record"
)

// progress prints one plain line per run start and end on stderr.
type progress struct {
	w            io.Writer
	total, n, ok int
	t0, runT0    time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, t0: time.Now()}
}

func (p *progress) start(e record.Experiment) {
	p.runT0 = time.Now()
	if p.w != nil {
		fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s %s ...\n", p.n+1, p.total, e.RunID, e.Backend, e.Model)
	}
}

func (p *progress) done(e record.Experiment, status string, resumed bool) {
	p.n++
	if status == record.StatusOK {
		p.ok++
	}
	if p.w == nil {
		return
	}
	if resumed {
		fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s (journal)\n", p.n, p.total, e.RunID, status)
		return
	}
	el := time.Since(p.t0)
	eta := ""
	if p.n < p.total {
		eta = fmt.Sprintf(", eta %s", (el / time.Duration(p.n) * time.Duration(p.total-p.n)).Round(time.Second))
	}
	fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s in %.1fs (ok %d, elapsed %s%s)\n", p.n, p.total, e.RunID, status,
		time.Since(p.runT0).Seconds(), p.ok, el.Round(time.Second), eta)
}

func (p *progress) finish() {}
