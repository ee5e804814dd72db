package load

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Entry is one request of a trace: when to send it (from the trace's first
// request) and how long its prompt and output are, in tokens.
type Entry struct {
	OffsetNS     int64
	InputTokens  int
	OutputTokens int
	Prompt       string // JSONL traces only; "" means a synthetic prompt of InputTokens
}

// TraceInfo says what ReadTrace skipped.
type TraceInfo struct {
	Format  string // jsonl | csv
	Rows    int    // requests kept
	NoReply int    // rows skipped for 0 generated tokens (failed requests in BurstGPT)
}

// CSV column names, by role, in the order they are looked for: Azure's LLM
// inference traces (2023 and 2024) first, then BurstGPT's.
var (
	csvTime   = []string{"TIMESTAMP", "Timestamp"}
	csvInput  = []string{"ContextTokens", "Request tokens"}
	csvOutput = []string{"GeneratedTokens", "Response tokens"}
)

// Layouts of a CSV timestamp that is not a number of seconds. Go's ".999999999"
// takes any number of fractional digits, or none.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
}

// ReadTrace reads a trace file: a .csv with a header naming a timestamp, a
// context-token and a generated-token column (Azure's TIMESTAMP,
// ContextTokens, GeneratedTokens, or BurstGPT's Timestamp, Request tokens,
// Response tokens), or JSONL with one {"offset_s", "input_tokens",
// "output_tokens"} object per line ("prompt" may replace input_tokens).
// Requests are sorted by time, stably, and offsets count from the earliest.
// Errors name file:line and the field.
func ReadTrace(path string) ([]Entry, TraceInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, TraceInfo{}, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	var es []Entry
	info := TraceInfo{Format: "jsonl"}
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		info.Format = "csv"
		es, info.NoReply, err = readCSV(path, f)
	} else {
		es, err = readJSONL(path, f)
	}
	if err != nil {
		return nil, info, err
	}
	if len(es) == 0 {
		return nil, info, fmt.Errorf("%s: no requests", path)
	}
	slices.SortStableFunc(es, func(a, b Entry) int { return cmpInt64(a.OffsetNS, b.OffsetNS) })
	first := es[0].OffsetNS
	for i := range es {
		es[i].OffsetNS -= first
	}
	info.Rows = len(es)
	return es, info, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type jsonlEntry struct {
	OffsetS      *float64 `json:"offset_s"`
	InputTokens  *int     `json:"input_tokens"`
	OutputTokens *int     `json:"output_tokens"`
	Prompt       string   `json:"prompt"`
}

func readJSONL(path string, r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var es []Entry
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var j jsonlEntry
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		at := func(field string) error { return fmt.Errorf("%s:%d: %s", path, line, field) }
		switch {
		case j.OffsetS == nil || *j.OffsetS < 0 || math.IsNaN(*j.OffsetS) || *j.OffsetS > 1e9:
			return nil, at("offset_s: want a number of seconds ≥ 0")
		case j.OutputTokens == nil || *j.OutputTokens < 1:
			return nil, at("output_tokens: want an integer ≥ 1")
		case j.Prompt == "" && (j.InputTokens == nil || *j.InputTokens < 1):
			return nil, at("input_tokens: want an integer ≥ 1 (or a prompt)")
		}
		e := Entry{OffsetNS: int64(math.Round(*j.OffsetS * 1e9)), OutputTokens: *j.OutputTokens, Prompt: j.Prompt}
		if j.InputTokens != nil {
			e.InputTokens = *j.InputTokens
		}
		if es = append(es, e); len(es) > MaxRequests {
			return nil, at(fmt.Sprintf("more than %d requests", MaxRequests))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

func readCSV(path string, r io.Reader) ([]Entry, int, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, 0, fmt.Errorf("%s:1: header: %w", path, err)
	}
	ti, ii, oi := column(head, csvTime), column(head, csvInput), column(head, csvOutput)
	if ti < 0 || ii < 0 || oi < 0 {
		return nil, 0, fmt.Errorf("%s:1: header %q: want columns %s, %s and %s", path, strings.Join(head, ","),
			strings.Join(csvTime, "|"), strings.Join(csvInput, "|"), strings.Join(csvOutput, "|"))
	}
	var es []Entry
	noReply := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return es, noReply, nil
		}
		if err != nil { // a csv.ParseError names its line
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		e, err := csvEntry(rec, ti, ii, oi)
		if err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if e.OutputTokens == 0 {
			noReply++
			continue
		}
		if es = append(es, e); len(es) > MaxRequests {
			return nil, 0, fmt.Errorf("%s:%d: more than %d requests", path, line, MaxRequests)
		}
	}
}

func column(head []string, names []string) int {
	for _, n := range names {
		for i, h := range head {
			if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == n {
				return i
			}
		}
	}
	return -1
}

func csvEntry(rec []string, ti, ii, oi int) (Entry, error) {
	var e Entry
	ts := strings.TrimSpace(rec[ti])
	t, err := parseTime(ts)
	if err != nil {
		return e, fmt.Errorf("%s %q: %v", csvTime[0], ts, err)
	}
	e.OffsetNS = t
	for _, c := range []struct {
		i   int
		dst *int
		min int
	}{{ii, &e.InputTokens, 1}, {oi, &e.OutputTokens, 0}} {
		v, err := strconv.Atoi(strings.TrimSpace(rec[c.i]))
		if err != nil || v < c.min {
			return e, fmt.Errorf("column %d %q: want an integer ≥ %d", c.i+1, rec[c.i], c.min)
		}
		*c.dst = v
	}
	return e, nil
}

// parseTime reads a timestamp as nanoseconds on some fixed origin: a number
// of seconds, or a date and time (UTC unless it names its zone).
func parseTime(s string) (int64, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if v < 0 || math.IsNaN(v) || v > 1e10 {
			return 0, errors.New("want seconds ≥ 0")
		}
		return int64(math.Round(v * 1e9)), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixNano(), nil
		}
	}
	return 0, errors.New("want seconds or a time like 2023-11-16 18:17:03.979")
}
