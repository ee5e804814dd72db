package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Version of llem-report, written into the JSON and HTML reports.
const Version = "0.1.0"

// Rows choose which rows the report holds.
const (
	RowsAll     = "all"
	RowsConfigs = "configs"
	RowsRuns    = "runs"
)

func (rp *Report) showConfigs() bool { return rp.Opt.Rows != RowsRuns }
func (rp *Report) showRuns() bool    { return rp.Opt.Rows != RowsConfigs }

func keyVal(s string) string {
	if s == Dash {
		return ""
	}
	return s
}

// WriteCSV writes one row per config (metrics: mean and 95 % interval) and
// one per run (metrics: the value), told apart by the "record" column. Numbers
// are raw SI values; the unit is in the column name. Unknown is empty.
func (rp *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"record", "study", "study_hash", "id", "run_id", "cycle", "status"}
	head = append(head, rp.By...)
	head = append(head, "runs", "runs_ok", "basis", "estimate", "flags", "error_type", "error_message")
	for _, m := range rp.Metrics {
		head = append(head, m.Col, m.Col+"_ci95_lo", m.Col+"_ci95_hi", m.Col+"_n")
	}
	head = append(head, rp.servingCSVHead()...)
	if err := cw.Write(head); err != nil {
		return err
	}
	if rp.showConfigs() {
		for _, c := range rp.Configs {
			ok, n := c.OK()
			hash := ""
			var codes []string
			if c.Summary != nil {
				hash = c.Summary.StudyHash
				codes = flagCodes(c.Summary.Flags)
			} else if len(c.Runs) > 0 {
				hash = c.Runs[0].E.StudyHash
			}
			row := []string{"config", c.Study, hash, c.ID, "", "", ""}
			for _, k := range c.Keys {
				row = append(row, keyVal(k))
			}
			row = append(row, strconv.Itoa(n), strconv.Itoa(ok), c.Basis, strconv.FormatBool(c.Estimate), strings.Join(codes, ";"), "", "")
			for _, m := range rp.Metrics {
				s := c.Stat(m.Name)
				if s == nil {
					row = append(row, "", "", "", "")
					continue
				}
				row = append(row, rawNum(s.Mean), rawNum(s.CI95Lo), rawNum(s.CI95Hi), strconv.Itoa(s.N))
			}
			row = append(row, rp.servingCSVCells(c, nil)...)
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	if rp.showRuns() {
		for _, r := range rp.Runs {
			e := r.E
			row := []string{"run", e.Study, e.StudyHash, e.ID, e.RunID, strconv.Itoa(e.Cycle), e.Status}
			for _, k := range r.Config.Keys {
				row = append(row, keyVal(k))
			}
			et, em := "", ""
			if e.Error != nil {
				et, em = e.Error.Type, oneLine(e.Error.Message)
			}
			row = append(row, "", "", e.Basis, strconv.FormatBool(e.Estimate), strings.Join(flagCodes(e.Flags), ";"), et, em)
			for _, m := range rp.Metrics {
				row = append(row, rawNum(e.Metrics[m.Name]), "", "", "")
			}
			row = append(row, rp.servingCSVCells(r.Config, r)...)
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

type jsonMetric struct {
	Name   string `json:"name"`
	Column string `json:"column"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`
	Energy bool   `json:"energy"`
}

type jsonConfig struct {
	ID       string                  `json:"id"`
	Study    string                  `json:"study"`
	Backend  string                  `json:"backend"`
	Model    string                  `json:"model"`
	Label    string                  `json:"label"`
	Keys     map[string]*string      `json:"keys"`
	Basis    string                  `json:"basis"`
	Runs     int                     `json:"runs"`
	RunsOK   int                     `json:"runs_ok"`
	RunIDs   []string                `json:"run_ids"`
	Estimate bool                    `json:"estimate"`
	Flags    []record.Flag           `json:"flags"`
	Metrics  map[string]*record.Stat `json:"metrics"`
}

type jsonRun struct {
	RunID    string              `json:"run_id"`
	ID       string              `json:"id"`
	Seq      int                 `json:"seq"`
	Cycle    int                 `json:"cycle"`
	Status   string              `json:"status"`
	Error    *record.Error       `json:"error"`
	Keys     map[string]*string  `json:"keys"`
	Host     string              `json:"host"`
	Basis    string              `json:"basis"`
	Estimate bool                `json:"estimate"`
	Flags    []record.Flag       `json:"flags"`
	Metrics  map[string]*float64 `json:"metrics"`
}

type jsonFlag struct {
	Code        string `json:"code"`
	Runs        int    `json:"runs"`
	Configs     int    `json:"configs"`
	Description string `json:"description"`
}

type jsonReport struct {
	Kind    string       `json:"kind"`
	V       int          `json:"v"`
	Tool    string       `json:"tool"`
	Version string       `json:"version"`
	Studies []Study      `json:"studies"`
	By      []string     `json:"by"`
	Metrics []jsonMetric `json:"metrics"`
	Configs []jsonConfig `json:"configs"`
	Runs    []jsonRun    `json:"runs"`
	Flags   []jsonFlag   `json:"flags"`
	Legend  []string     `json:"legend"`
	// Serving sweeps; left out of batch reports.
	Serving []jsonSweep `json:"serving,omitempty"`
}

func (rp *Report) keysOf(c *Config) map[string]*string {
	m := map[string]*string{}
	for i, k := range rp.By {
		if c.Keys[i] == Dash {
			m[k] = nil
			continue
		}
		v := c.Keys[i]
		m[k] = &v
	}
	return m
}

// WriteJSON writes the report as one JSON document. Metric keys are the
// column names (raw SI numbers, unit in the name); null is unknown.
func (rp *Report) WriteJSON(w io.Writer) error {
	out := jsonReport{Kind: "report", V: 1, Tool: "llem-report", Version: Version, Studies: rp.Studies, By: rp.By,
		Metrics: []jsonMetric{}, Configs: []jsonConfig{}, Runs: []jsonRun{}, Flags: []jsonFlag{}, Legend: rp.legend(), Serving: rp.servingJSON()}
	for _, m := range rp.Metrics {
		out.Metrics = append(out.Metrics, jsonMetric{m.Name, m.Col, m.Label, m.Unit, m.Energy})
	}
	if rp.showConfigs() {
		for _, c := range rp.Configs {
			ok, n := c.OK()
			jc := jsonConfig{ID: c.ID, Study: c.Study, Backend: c.Backend, Model: c.Model, Label: rp.Label(c), Keys: rp.keysOf(c),
				Basis: c.Basis, Runs: n, RunsOK: ok, RunIDs: []string{}, Estimate: c.Estimate, Flags: []record.Flag{}, Metrics: map[string]*record.Stat{}}
			for _, r := range c.Runs {
				jc.RunIDs = append(jc.RunIDs, r.E.RunID)
			}
			if c.Summary != nil {
				jc.Flags = append(jc.Flags, c.Summary.Flags...)
			}
			for _, m := range rp.Metrics {
				jc.Metrics[m.Col] = c.Stat(m.Name)
			}
			out.Configs = append(out.Configs, jc)
		}
	}
	if rp.showRuns() {
		for _, r := range rp.Runs {
			e := r.E
			jr := jsonRun{RunID: e.RunID, ID: e.ID, Seq: e.Seq, Cycle: e.Cycle, Status: e.Status, Error: e.Error, Keys: rp.keysOf(r.Config),
				Host: e.Host, Basis: e.Basis, Estimate: e.Estimate, Flags: append([]record.Flag{}, e.Flags...), Metrics: map[string]*float64{}}
			for _, m := range rp.Metrics {
				jr.Metrics[m.Col] = e.Metrics[m.Name]
			}
			out.Runs = append(out.Runs, jr)
		}
	}
	for _, f := range rp.FlagCounts() {
		out.Flags = append(out.Flags, jsonFlag(f))
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return err
	}
	return bw.Flush()
}
