package runloop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/llem/llem/internal/fuzzguard"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// collect feeds data to a collector in writes of chunk bytes (all at once
// when chunk <= 0) and returns what it kept and concluded.
func collect(data []byte, chunk int, max int64) (events []byte, c *collector, log []byte) {
	var ev, lg bytes.Buffer
	lw := &logWriter{w: bufio.NewWriter(&lg), max: 1 << 20}
	c = newCollector(&ev, lw, max)
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for p := data; len(p) > 0; {
		n := min(chunk, len(p))
		c.Write(p[:n])
		if len(c.buf) > maxEventLine+chunk {
			panic(fmt.Sprintf("collector buffers %d bytes", len(c.buf)))
		}
		p = p[n:]
	}
	c.finish()
	lw.w.Flush()
	return ev.Bytes(), c, lg.Bytes()
}

// FuzzEvents: any bytes a worker prints to stdout, in writes of any size,
// never panic the collector, and give the same events, phases and flags
// however the pipe split them; events.ndjson holds only protocol events;
// phase windows are never reversed; the run record's share stays bounded.
func FuzzEvents(f *testing.F) {
	for _, s := range seedEvents() {
		f.Add(s, uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		defer fuzzguard.Start("FuzzEvents")()
		max := int64(len(data)/2 + 1) // cut events.ndjson half way, sometimes
		if chunk%2 == 0 {
			max = 0
		}
		ev1, c1, _ := collect(data, 0, max)
		ev2, c2, _ := collect(data, int(chunk%512)+1, max)
		if !bytes.Equal(ev1, ev2) {
			t.Fatalf("events differ with writes of %d bytes:\n%q\n%q", chunk%512+1, ev1, ev2)
		}
		p1, f1 := c1.phases()
		p2, f2 := c2.phases()
		if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(c1.flags(), c2.flags()) ||
			c1.done != c2.done || !reflect.DeepEqual(c1.totals, c2.totals) || !reflect.DeepEqual(c1.errEv, c2.errEv) {
			t.Fatalf("state differs with writes of %d bytes", chunk%512+1)
		}
		if int64(len(ev1)) > c1.eventsMax {
			t.Fatalf("events.ndjson of %d bytes over its limit %d", len(ev1), c1.eventsMax)
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(ev1, []byte("\n")), []byte("\n")) {
			if len(ev1) == 0 {
				break
			}
			var e struct{ Event string }
			if json.Unmarshal(line, &e) != nil || !knownEvent(e.Event) {
				t.Fatalf("events.ndjson holds a line that is not a protocol event: %q", line)
			}
		}
		for _, w := range []*record.Window{p1.Load, p1.Warmup, p1.Measure} {
			if w != nil && w.EndNS < w.StartNS {
				t.Fatalf("window %+v reversed", *w)
			}
		}
		fl := c1.flags()
		if len(fl) > maxWarnings+8 {
			t.Fatalf("%d flags", len(fl))
		}
		size := 0
		for _, x := range append(fl, f1...) {
			size += len(x.Code) + len(x.Message) + len(x.Hint)
		}
		if c1.errEv != nil {
			size += len(c1.errEv.Message) + len(c1.errEv.Hint) + len(c1.errEv.Code)
		}
		if size > (maxWarnings+10)*(2*maxFlagText+80) {
			t.Fatalf("the worker put %d bytes of text into its run record", size)
		}
	})
}

func seedEvents() map[string][]byte {
	t := int64(1_700_000_000_000_000_000)
	good := fmt.Sprintf(`{"event":"hello","t":%d,"backend":"test","version":"1","pid":7}
{"event":"model","t":%d,"model":{"parameters":1000,"layers":2}}
{"event":"phase","t":%d,"phase":"load","edge":"start"}
{"event":"phase","t":%d,"phase":"load","edge":"end"}
{"event":"phase","t":%d,"phase":"measure","edge":"start"}
{"event":"request","t":%d,"request":{"id":0,"batch":0,"input_tokens":3,"output_tokens":2,"t_start":1,"t_first_token":2,"t_end":3,"itl_ns":[1]}}
{"event":"memory","t":%d,"memory":[{"device":"GPU-0","peak_bytes":10}]}
{"event":"warning","t":%d,"code":"Slow Start","message":"m","hint":"h"}
{"event":"phase","t":%d,"phase":"measure","edge":"end"}
{"event":"done","t":%d,"totals":{"requests":1,"input_tokens":3,"output_tokens":2}}
`, t, t+1, t+2, t+3, t+4, t+5, t+6, t+7, t+8, t+9)
	return map[string][]byte{
		"good":        []byte(good),
		"garbage":     []byte("Loading 100%\r\n" + good + "no newline"),
		"backwards":   []byte(fmt.Sprintf("{\"event\":\"phase\",\"t\":%d,\"phase\":\"measure\",\"edge\":\"end\"}\n{\"event\":\"phase\",\"t\":%d,\"phase\":\"measure\",\"edge\":\"start\"}\n", t+9, t+1)),
		"error":       []byte(`{"event":"error","t":1,"code":"oom","message":"CUDA out of memory","hint":"lower batch_size"}` + "\n"),
		"after-done":  []byte(good + `{"event":"phase","t":1,"phase":"warmup","edge":"start"}` + "\n"),
		"dup-edge":    []byte(`{"event":"phase","t":1,"phase":"load","edge":"start"}` + "\n" + `{"event":"phase","t":2,"phase":"load","edge":"start"}` + "\n"),
		"wrong-types": []byte(`{"event":"request","t":"x"}` + "\n" + `{"event":7}` + "\n" + `{"event":"done","totals":[]}` + "\n"),
	}
}

// FuzzJournal: any journal.ndjson (a study directory is files anyone may
// have edited or a crash may have cut) replays to run states or an error
// naming journal:line:col, never a panic; a truncated last line is cut off
// with a warning, after which a second replay is clean and agrees.
func FuzzJournal(f *testing.F) {
	for _, s := range seedJournals() {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Start("FuzzJournal")()
		p := filepath.Join(dir, "journal.ndjson")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var warns []string
		st, err := readJournal(p, func(s string) { warns = append(warns, s) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), p+":") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for _, w := range warns {
			if !strings.HasPrefix(w, p+":") {
				t.Fatalf("warning without file:line: %s", w)
			}
		}
		after, _ := os.ReadFile(p)
		if len(after) > 0 && after[len(after)-1] != '\n' {
			t.Fatalf("journal left with a partial last line")
		}
		if !bytes.HasPrefix(data, after) {
			t.Fatal("replay changed the journal other than cutting its tail")
		}
		var warns2 []string
		st2, err := readJournal(p, func(s string) { warns2 = append(warns2, s) })
		if err != nil || len(warns2) > 0 || !reflect.DeepEqual(st, st2) {
			t.Fatalf("second replay differs: %v %v", err, warns2)
		}
		for id, s := range st {
			if s.Attempts < 0 || id == "" {
				t.Fatalf("state %q %+v", id, s)
			}
		}
	})
}

func seedJournals() map[string][]byte {
	open := `{"t":1,"op":"open","pid":9,"host":"h"}` + "\n"
	pend := `{"t":2,"op":"state","run_id":"r000-c1","seq":0,"id":"0000000000000000","status":"pending"}` + "\n"
	run := `{"t":3,"op":"state","run_id":"r000-c1","seq":0,"id":"0000000000000000","status":"running","attempt":1}` + "\n"
	ok := `{"t":4,"op":"state","run_id":"r000-c1","seq":0,"id":"0000000000000000","status":"ok","attempt":1}` + "\n"
	fail := `{"t":5,"op":"state","run_id":"r001-c1","seq":1,"status":"failed","attempt":2,"error":{"type":"crash","message":"m"}}` + "\n"
	closed := `{"t":6,"op":"close","pid":9,"reason":"done"}` + "\n"
	whole := open + pend + run + ok + fail + closed
	return map[string][]byte{
		"whole":      []byte(whole),
		"cut":        []byte(whole[:len(whole)-9]),
		"bad-line":   []byte(open + "{\"op\":\"state\",\"seq\":\"x\"}\n" + ok),
		"blank-crlf": []byte(open + "\r\n\n" + ok),
		"not-json":   []byte(open + "garbage\n"),
	}
}

// TestFuzzCorpus checks the committed seed corpora of FuzzEvents and
// FuzzJournal, and rewrites them with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	for target, seeds := range map[string]map[string][]byte{"FuzzEvents": seedEvents(), "FuzzJournal": seedJournals()} {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			os.MkdirAll(dir, 0o755)
			for name, b := range seeds {
				body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
				if target == "FuzzEvents" {
					body += "uint16(7)\n"
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) < len(seeds) {
			t.Fatalf("seed corpus %s: %d files, %v", dir, len(ents), err)
		}
	}
}
