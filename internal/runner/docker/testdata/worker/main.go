// Command worker is a tiny worker-protocol process for the docker runner's
// tests, built static (CGO_ENABLED=0) into an image FROM scratch. Its mode
// comes from LLEM_TEST_MODE:
//
//	succeed   hello, load, model, measure with one request per prompt, memory, done; exit 0
//	crash     hello, load start, an error event, exit 3
//	hang      hello, then wait for SIGTERM: says so on stderr, exits 143
//	stubborn  hello, then sleep forever ignoring SIGTERM (only SIGKILL ends it)
//	hugelog   LLEM_TEST_LOG_MB MiB of text on stderr, then as succeed
//	oom       allocate and touch memory until killed
//	env       as succeed, and writes env.txt (its environment) and proof.txt into the run dir
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llem/llem/internal/record"
)

var out = bufio.NewWriter(os.Stdout)

func emit(ev record.Event) {
	if ev.T == 0 {
		ev.T = time.Now().UnixNano()
	}
	b, _ := json.Marshal(ev)
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func main() {
	mode := os.Getenv("LLEM_TEST_MODE")
	// Signal handling is set before the hello: tests signal the worker once
	// they have seen it.
	term := make(chan os.Signal, 1)
	switch mode {
	case "hang":
		signal.Notify(term, syscall.SIGTERM)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	}
	emit(record.Event{Event: record.EventHello, Backend: "native", Version: "test-worker", PID: os.Getpid()})
	raw, err := os.ReadFile(os.Getenv("LLEM_EXPERIMENT"))
	if err != nil {
		emit(record.Event{Event: record.EventError, Code: "no_experiment", Message: err.Error()})
		os.Exit(2)
	}
	var in record.WorkerInput
	if err := json.Unmarshal(raw, &in); err != nil {
		emit(record.Event{Event: record.EventError, Code: "bad_experiment", Message: err.Error()})
		os.Exit(2)
	}
	switch mode {
	case "crash":
		emit(record.Event{Event: record.EventPhase, Phase: record.PhaseLoad, Edge: record.EdgeStart})
		emit(record.Event{Event: record.EventError, Code: "test_crash", Message: "crashing on purpose"})
		fmt.Fprintln(os.Stderr, "test worker: crash")
		os.Exit(3)
	case "hang":
		fmt.Fprintln(os.Stderr, "test worker: hanging")
		<-term
		fmt.Fprintln(os.Stderr, "test worker: got SIGTERM")
		os.Exit(143)
	case "stubborn":
		fmt.Fprintln(os.Stderr, "test worker: hanging, ignoring SIGTERM")
		sleepForever()
	case "oom":
		var keep [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := range b {
				b[i] = byte(i)
			}
			keep = append(keep, b)
		}
	case "hugelog":
		mb, _ := strconv.Atoi(os.Getenv("LLEM_TEST_LOG_MB"))
		line := []byte(strings.Repeat("x", 1023) + "\n")
		w := bufio.NewWriterSize(os.Stderr, 1<<16)
		for i := 0; i < mb*1024; i++ {
			w.Write(line)
		}
		w.Flush()
	case "env":
		dir := os.Getenv("LLEM_RUN_DIR")
		os.WriteFile(dir+"/env.txt", []byte(strings.Join(os.Environ(), "\n")), 0o644)
		os.WriteFile(dir+"/proof.txt", []byte(in.RunID), 0o644)
	}
	run(in)
}

func run(in record.WorkerInput) {
	emit(record.Event{Event: record.EventPhase, Phase: record.PhaseLoad, Edge: record.EdgeStart})
	p := int64(1000)
	emit(record.Event{Event: record.EventModel, Model: &record.ModelFacts{Name: in.Model, Parameters: &p}})
	emit(record.Event{Event: record.EventPhase, Phase: record.PhaseLoad, Edge: record.EdgeEnd})
	emit(record.Event{Event: record.EventPhase, Phase: record.PhaseMeasure, Edge: record.EdgeStart})
	var tot record.Totals
	for i, pr := range in.Prompts {
		t0 := time.Now().UnixNano()
		n := len(strings.Fields(pr))
		emit(record.Event{Event: record.EventRequest, Request: &record.RequestEvent{ID: i, InputTokens: n, OutputTokens: 2,
			TStartNS: t0, TFirstNS: t0 + 1000, TEndNS: t0 + 2000, ITLNS: []int64{1000}}})
		tot.Requests++
		tot.InputTokens += int64(n)
		tot.OutputTokens += 2
	}
	emit(record.Event{Event: record.EventPhase, Phase: record.PhaseMeasure, Edge: record.EdgeEnd})
	emit(record.Event{Event: record.EventMemory, Memory: []record.Memory{{Device: "cpu"}}})
	emit(record.Event{Event: record.EventDone, Totals: &tot})
}

// sleepForever sleeps (a bare select{} would be a deadlock the runtime kills).
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
