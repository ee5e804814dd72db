package runloop

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/llem/llem/internal/record"
)

// progress reports on stderr: a redrawn bar (counts, current run, elapsed,
// ETA) when stderr is a terminal, else one plain line per run start and end.
type progress struct {
	mu           sync.Mutex
	w            io.Writer
	tty          bool
	total, n, ok int
	failed       int
	t0, runT0    time.Time
	starts       map[string]time.Time // runs in flight (--parallel: several)
	cur          string
	executed     int
	executedTime time.Duration
	stop         chan struct{}
	width        int
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, t0: time.Now(), width: 100}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if wd, _, err := term.GetSize(int(f.Fd())); err == nil && wd > 40 {
			p.width = wd
		}
		p.stop = make(chan struct{})
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				case <-p.stop:
					return
				}
			}
		}()
	}
	return p
}

func (p *progress) start(e record.Experiment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runT0 = time.Now()
	if p.starts == nil {
		p.starts = map[string]time.Time{}
	}
	p.starts[e.RunID] = p.runT0
	p.cur = e.RunID
	if p.w == nil {
		return
	}
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s %s ...\n", p.n+1, p.total, e.RunID, e.Backend, e.Model)
}

// eta extrapolates from the runs this session executed (resumed ones cost nothing).
func (p *progress) eta() string {
	if p.executed == 0 || p.n >= p.total {
		return ""
	}
	return fmt.Sprintf(", eta %s", (p.executedTime / time.Duration(p.executed) * time.Duration(p.total-p.n)).Round(time.Second))
}

func (p *progress) done(e record.Experiment, status string, resumed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if status == record.StatusOK {
		p.ok++
	} else {
		p.failed++
	}
	took := time.Since(p.runT0)
	if t, ok := p.starts[e.RunID]; ok {
		took = time.Since(t)
		delete(p.starts, e.RunID)
	}
	if !resumed {
		p.executed++
		p.executedTime += took
	}
	p.cur = ""
	for id := range p.starts {
		p.cur = id // another run still in flight
		break
	}
	if p.w == nil {
		return
	}
	el := time.Since(p.t0).Round(time.Second)
	if p.tty {
		if status != record.StatusOK {
			fmt.Fprintf(p.w, "\r\x1b[K%s %s\n", e.RunID, status)
		}
		p.draw()
		return
	}
	if resumed {
		fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s (journal)\n", p.n, p.total, e.RunID, status)
		return
	}
	fmt.Fprintf(p.w, "llem-exec: [%d/%d] %s %s in %.1fs (ok %d, elapsed %s%s)\n", p.n, p.total, e.RunID, status,
		took.Seconds(), p.ok, el, p.eta())
}

func (p *progress) draw() {
	const barW = 24
	filled := 0
	if p.total > 0 {
		filled = barW * p.n / p.total
	}
	line := fmt.Sprintf("[%s%s] %d/%d ok %d failed %d | %s | %s%s", strings.Repeat("#", filled), strings.Repeat(".", barW-filled),
		p.n, p.total, p.ok, p.failed, nonEmpty(p.cur, "-"), time.Since(p.t0).Round(time.Second), p.eta())
	if len(line) > p.width-1 {
		line = line[:p.width-1]
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
}

func (p *progress) finish() {
	if p.stop != nil {
		close(p.stop)
		p.mu.Lock()
		p.draw()
		fmt.Fprintln(p.w)
		p.mu.Unlock()
	}
}
