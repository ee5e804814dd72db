// Command faultworker is a llem worker that misbehaves on purpose, for the
// reliability suite. Its behaviour is the config's "behave" field.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	b, err := os.ReadFile(os.Getenv("LLEM_EXPERIMENT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "no experiment:", err)
		os.Exit(2)
	}
	var in struct {
		Config struct {
			Behave string  `json:"behave"`
			SleepS float64 `json:"sleep_s"`
			Bytes  int     `json:"bytes"`
			Target string  `json:"target"`
			// Touch is created once the measurement has started; the
			// worker then waits for WaitFor to exist. A test so knows a run
			// is in progress, and ends it when it chooses, without timing.
			Touch   string `json:"touch"`
			WaitFor string `json:"wait_for"`
		} `json:"config"`
	}
	json.Unmarshal(b, &in)
	dir := os.Getenv("LLEM_RUN_DIR")
	now := func() int64 { return time.Now().UnixNano() }
	ev := func(s string, a ...any) { fmt.Printf(s+"\n", a...) }
	sleep := func() { time.Sleep(time.Duration(in.Config.SleepS * float64(time.Second))) }
	good := func(t0 int64, step int64) {
		ev(`{"event":"hello","t":%d,"backend":"fault","version":"1","pid":%d}`, t0, os.Getpid())
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, t0+step)
		if in.Config.Touch != "" {
			os.WriteFile(in.Config.Touch, nil, 0o644)
		}
		for in.Config.WaitFor != "" {
			if _, err := os.Stat(in.Config.WaitFor); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling for the file
		}
		sleep()
		ev(`{"event":"request","t":%d,"request":{"id":0,"batch":0,"input_tokens":3,"output_tokens":2,"t_start":%d,"t_first_token":%d,"t_end":%d}}`, now(), t0+step, t0+2*step, now())
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"end"}`, now())
		ev(`{"event":"done","t":%d,"totals":{"requests":1,"input_tokens":3,"output_tokens":2}}`, now())
	}
	switch in.Config.Behave {
	case "", "succeed":
		good(now(), 1000)
	case "backwards":
		// The worker's clock steps back 10 s between its phase edges (an NTP
		// step, or a worker on a skewed clock).
		t0 := now()
		ev(`{"event":"hello","t":%d,"backend":"fault"}`, t0)
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, t0)
		sleep()
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"end"}`, t0-10e9)
		ev(`{"event":"done","t":%d,"totals":{"requests":0}}`, t0-10e9+1)
	case "fill":
		// Stderr (worker.log) of in.Config.Bytes, then a good run.
		line := strings.Repeat("f", 1023) + "\n"
		for n := 0; n < in.Config.Bytes; n += len(line) {
			os.Stderr.WriteString(line)
		}
		good(now(), 1000)
	case "flood":
		// Valid request events without end, until killed or the pipe breaks.
		t0 := now()
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, t0)
		for i := 0; ; i++ {
			if _, err := fmt.Printf(`{"event":"request","t":%d,"request":{"id":%d,"batch":0,"input_tokens":3,"output_tokens":2,"t_start":1,"t_first_token":2,"t_end":3}}`+"\n", t0, i); err != nil {
				os.Exit(1)
			}
			if in.Config.Bytes > 0 && i*130 > in.Config.Bytes {
				break
			}
		}
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"end"}`, now())
		ev(`{"event":"done","t":%d,"totals":{"requests":1}}`, now())
	case "warnflood":
		// Far more warnings than a run record keeps, one far longer than a
		// flag's text, and one event over the size a run record takes.
		msg := strings.Repeat("w", 2<<10)
		ev(`{"event":"warning","t":%d,"code":"big","message":"%s"}`, now(), strings.Repeat("b", 100<<10))
		for i := 0; i < 2000; i++ {
			ev(`{"event":"warning","t":%d,"code":"w%d","message":"%s"}`, now(), i, msg)
		}
		good(now(), 1000)
	case "plant-symlink":
		// Replace the files llem-exec keeps open with links out of the run
		// directory, hoping a tool follows them.
		target := in.Config.Target
		for _, f := range []string{"events.ndjson", "worker.log"} {
			os.Remove(filepath.Join(dir, f))
			os.Symlink(target, filepath.Join(dir, f))
		}
		good(now(), 1000)
	case "plant-fifo":
		os.Remove(filepath.Join(dir, "events.ndjson"))
		syscall.Mkfifo(filepath.Join(dir, "events.ndjson"), 0o644)
		good(now(), 1000)
	case "env":
		// Proves the secret reached the worker, without printing it.
		fmt.Fprintf(os.Stderr, "HF_TOKEN set: %v, length %d\n", os.Getenv("HF_TOKEN") != "", len(os.Getenv("HF_TOKEN")))
		good(now(), 1000)
	case "error":
		ev(`{"event":"error","t":%d,"code":"oom","message":"CUDA out of memory","hint":"lower batch_size"}`, now())
		os.Exit(1)
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: boom")
		os.Exit(2)
	case "hang":
		// Until killed: any --timeout gives the same outcome.
		for {
			time.Sleep(time.Hour)
		}
	}
}
