// Command testworker is a scripted llem worker for llem-exec's tests. Its
// behaviour is the config's "behave" field; it writes its pid (and any
// grandchild's) to pids in LLEM_RUN_DIR so tests can check nothing survives.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
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
			Behave  string `json:"behave"`
			SleepMS int    `json:"sleep_ms"`
			// Barrier: a folder, and how many runs meet there. A run that
			// has one writes its id there after its start time and waits
			// until Meet runs have, so that they are all in flight at one
			// moment whatever the machine's load.
			Barrier string `json:"barrier"`
			Meet    int    `json:"meet"`
			// AwaitSamples: start once the sampler program has written
			// something to the run's samples (it may start slower than a
			// run ends on a busy machine).
			AwaitSamples bool `json:"await_samples"`
		} `json:"config"`
	}
	json.Unmarshal(b, &in)
	dir := os.Getenv("LLEM_RUN_DIR")
	pids := []string{fmt.Sprint(os.Getpid())}
	writePids := func() { os.WriteFile(filepath.Join(dir, "pids"), []byte(strings.Join(pids, "\n")), 0o644) }
	writePids()
	now := func() int64 { return time.Now().UnixNano() }
	ev := func(s string, a ...any) { fmt.Printf(s+"\n", a...) }
	good := func() {
		ev(`{"event":"hello","t":%d,"backend":"test","version":"1","pid":%d}`, now(), os.Getpid())
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, now())
		ev(`{"event":"request","t":%d,"request":{"id":0,"batch":0,"input_tokens":3,"output_tokens":2,"t_start":1,"t_first_token":2,"t_end":3}}`, now())
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"end"}`, now())
		ev(`{"event":"done","t":%d,"totals":{"requests":1,"input_tokens":3,"output_tokens":2}}`, now())
	}
	if in.Config.AwaitSamples {
		awaitSamples(dir)
	}
	switch in.Config.Behave {
	case "", "succeed":
		good()
	case "sampled":
		awaitSamples(dir)
		good()
	case "slow":
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, now())
		time.Sleep(40 * time.Millisecond)
		good()
	case "error":
		ev(`{"event":"error","t":%d,"code":"oom","message":"CUDA out of memory","hint":"lower batch_size"}`, now())
		os.Exit(1)
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: boom")
		var p *int
		_ = *p
	case "exit3":
		fmt.Fprintln(os.Stderr, "giving up")
		os.Exit(3)
	case "nodone":
		ev(`{"event":"hello","t":%d,"backend":"test"}`, now())
	case "hang":
		// Until killed: any timeout gives the same outcome.
		forever()
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		forever()
	case "garbage":
		fmt.Println("Loading checkpoint shards: 100%")
		good()
		fmt.Print("no newline at the end")
	case "outoforder":
		t := now()
		ev(`{"event":"done","t":%d,"totals":{"requests":1,"input_tokens":3,"output_tokens":2}}`, t+50)
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"end"}`, t+40)
		ev(`{"event":"phase","t":%d,"phase":"measure","edge":"start"}`, t+10)
	case "huge":
		line := strings.Repeat("x", 1<<20)
		for i := 0; i < 40; i++ {
			fmt.Fprintln(os.Stderr, line)
		}
		fmt.Println(strings.Repeat("y", 6<<20))
		good()
	case "report":
		// What the run was given, and when it ran (--parallel tests).
		t0 := now()
		if c := in.Config; c.Barrier != "" {
			os.WriteFile(filepath.Join(c.Barrier, filepath.Base(dir)), nil, 0o644)
			for {
				if es, _ := os.ReadDir(c.Barrier); len(es) >= c.Meet {
					break
				}
				time.Sleep(5 * time.Millisecond) // polling for the others
			}
		}
		time.Sleep(time.Duration(in.Config.SleepMS) * time.Millisecond)
		cvd, set := os.LookupEnv("CUDA_VISIBLE_DEVICES")
		rep, _ := json.Marshal(map[string]any{"cuda_visible_devices": cvd, "set": set, "start_ns": t0, "end_ns": now()})
		os.WriteFile(filepath.Join(dir, "report.json"), rep, 0o644)
		good()
	case "grandchild":
		c := exec.Command("sleep", "3600")
		c.Start()
		pids = append(pids, fmt.Sprint(c.Process.Pid))
		writePids()
		good()
	}
}

// forever blocks until the process is killed (a bare select{} would be
// Go's "all goroutines are asleep" crash).
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}

// awaitSamples returns once the sampler program has written something to
// the run's samples.arrows: a slow machine may start it later than a short
// run would end.
func awaitSamples(dir string) {
	for {
		if fi, err := os.Stat(filepath.Join(dir, "samples.arrows")); err == nil && fi.Size() > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling for the file
	}
}
