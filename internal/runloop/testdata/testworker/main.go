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
	switch in.Config.Behave {
	case "", "succeed":
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
		time.Sleep(time.Hour)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
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
