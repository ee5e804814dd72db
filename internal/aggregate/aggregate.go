// Package aggregate turns run records and their sample streams into energy
// records (one per run) and summary records (one per config across its
// cycles): energy per phase and device by counter and by power integral, idle
// adjustment, per-token and per-request figures, latency percentiles, FLOPs,
// validity flags and across-cycle statistics. See docs/aggregate.md.
package aggregate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// FlagBadEvents marks a run whose events file could not be read in full.
const FlagBadEvents = "bad_events"

// FlagSamplesTruncated marks an energy record whose sample stream was cut
// mid-batch.
const FlagSamplesTruncated = "samples_truncated"

// Config wires an Aggregator.
type Config struct {
	Options
	// Root re-bases run directories that were moved: a run_dir that does not
	// exist is looked up under Root by its trailing path components.
	Root string
	// RequestFiles writes each run's per-request attribution into its run
	// directory (requests_energy.ndjson).
	RequestFiles bool
	// Open opens a sample stream; required.
	Open func(path string) (Source, error)
	// Log receives one-line warnings (stderr in the command).
	Log io.Writer
	// Footprint holds the carbon and cost assumptions (none by default).
	Footprint Footprint
}

// Aggregator consumes records and emits energy and summary records.
type Aggregator struct {
	cfg       Config
	out       *record.Writer
	baselines map[string]*record.Baseline
	pending   []*record.Run
	// Energies holds every energy record emitted, in order (for the summary and Parquet).
	Energies  []*record.Energy
	Summaries []*record.Summary
	Failed    int // runs whose samples could not be read
	// BadRequests counts ok serving runs whose requests file could not be read.
	BadRequests int
}

// New makes an aggregator writing records to out.
func New(cfg Config, out *record.Writer) *Aggregator {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return &Aggregator{cfg: cfg, out: out, baselines: map[string]*record.Baseline{}}
}

// ReadAll feeds every record of r (named name in errors).
func (a *Aggregator) ReadAll(r io.Reader, name string) error {
	rd := record.NewReader(r, name)
	for rd.Next() {
		if err := a.Feed(rd.Line()); err != nil {
			return err
		}
	}
	return rd.Err()
}

// decode checks an input record against its JSON Schema and decodes it. A
// record that breaks its schema (a required field missing, a negative
// duration or idle power) is bad input: an error naming file:line and the
// field, not a record processed with wrong figures. A newer minor version
// may carry fields the schema does not know, so it is decoded leniently and
// not checked.
func decode(l record.Line, v any) error {
	if l.V > record.Version {
		return l.DecodeLax(v) // a newer minor version: keep what we know
	}
	if err := schemas.Validate(l.Kind, l.Raw); err != nil {
		return &record.PosError{File: l.File, Line: l.No, Err: err}
	}
	return l.Decode(v)
}

// Feed handles one record: baselines are kept, runs are aggregated (at once
// when their baseline is known, else at Close), anything else passes through.
func (a *Aggregator) Feed(l record.Line) error {
	switch l.Kind {
	case record.KindBaseline:
		var b record.Baseline
		if err := decode(l, &b); err != nil {
			return err
		}
		a.baselines[b.ID] = &b
		// Runs waiting for this baseline can go now, in their order.
		var still []*record.Run
		for _, r := range a.pending {
			if r.BaselineID == b.ID {
				if err := a.process(r); err != nil {
					return err
				}
			} else {
				still = append(still, r)
			}
		}
		a.pending = still
		return nil
	case record.KindRun:
		var r record.Run
		if err := decode(l, &r); err != nil {
			return err
		}
		if r.BaselineID != "" && a.baselines[r.BaselineID] == nil {
			a.pending = append(a.pending, &r)
			return nil
		}
		return a.process(&r)
	default:
		return a.out.WriteRaw(l.Raw)
	}
}

// Close aggregates the runs still waiting for a baseline and emits one
// summary per config id, in the order the ids were first seen.
func (a *Aggregator) Close() error {
	for _, r := range a.pending {
		if err := a.process(r); err != nil {
			return err
		}
	}
	a.pending = nil
	a.Summaries = Summarize(a.Energies, a.cfg.Options)
	addSummaryFootprints(a.Energies, a.Summaries)
	for _, s := range a.Summaries {
		if err := a.out.Write(s); err != nil {
			return err
		}
	}
	return nil
}

func (a *Aggregator) warn(format string, args ...any) {
	fmt.Fprintf(a.cfg.Log, "llem-aggregate: "+format+"\n", args...)
}

func (a *Aggregator) process(r *record.Run) error {
	in := RunInput{Run: r}
	if r.BaselineID != "" {
		in.Baseline = a.baselines[r.BaselineID]
	}
	dir := record.ResolveRunDir(r.RunDir, a.cfg.Root)
	var eventsFlag *record.Flag
	if r.EventsFile != "" && dir != "" {
		reqs, model, err := ReadEvents(filepath.Join(dir, r.EventsFile))
		switch {
		case err == nil:
			in.Requests, in.Model = reqs, model
		case errors.Is(err, os.ErrNotExist) && r.Status != record.StatusOK:
		default:
			in.Requests, in.Model = reqs, model
			eventsFlag = &record.Flag{Code: FlagBadEvents, Message: err.Error(),
				Hint: "request events after the bad line are ignored; latency and per-request figures cover the lines before it"}
			if r.Status == record.StatusOK {
				a.warn("run %s: %v", r.RunID, err)
			}
		}
	}
	if in.Serving = loadServing(r, dir); in.Serving != nil && in.Serving.Err != nil && r.Status == record.StatusOK {
		a.BadRequests++
		a.warn("run %s: %v", r.RunID, in.Serving.Err)
	}
	if r.SampleFile != "" && dir != "" {
		src, err := a.cfg.Open(filepath.Join(dir, r.SampleFile))
		if err != nil {
			in.SourceErr = err
			if r.Status == record.StatusOK {
				a.Failed++
				a.warn("run %s: %v", r.RunID, err)
			}
		} else {
			in.Source = src
		}
	} else {
		in.SourceErr = fmt.Errorf("the run record names no sample file")
	}
	res, err := Compute(in, a.cfg.Options)
	if t, ok := in.Source.(interface{ Truncated() bool }); ok && err == nil && t.Truncated() {
		res.Energy.Flags = append(res.Energy.Flags, record.Flag{Code: FlagSamplesTruncated,
			Message: fmt.Sprintf("%s ends inside a batch (the sampler died or the disk filled while writing it)", filepath.Join(dir, r.SampleFile)),
			Hint:    "the figures cover the samples before the cut; windows after it have no samples and are flagged"})
		a.warn("run %s: %s is cut short; figures cover the samples before the cut", r.RunID, r.SampleFile)
	}
	if in.Source != nil {
		if cerr := in.Source.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		// A sample stream that breaks mid-way is that run's problem, not the whole input's.
		a.Failed++
		a.warn("%v", err)
		in.Source, in.SourceErr = nil, err
		if res, err = Compute(in, a.cfg.Options); err != nil {
			return err
		}
	}
	e := res.Energy
	if eventsFlag != nil {
		e.Flags = append(e.Flags, *eventsFlag)
	}
	if a.cfg.RequestFiles && res.Requests != nil && dir != "" {
		if err := writeRequests(filepath.Join(dir, RequestsEnergyFile), res.Requests); err != nil {
			a.warn("run %s: per-request energy not written: %v", r.RunID, err)
		} else {
			e.RequestsEnergy = RequestsEnergyFile
		}
	}
	e.Footprint = a.cfg.Footprint.footprint(e)
	a.Energies = append(a.Energies, e)
	return a.out.Write(e)
}

// ReadEvents reads a worker's events file: its request events and model facts.
// On a bad line it returns what it read before it, and an error naming file:line:col.
func ReadEvents(path string) ([]record.RequestEvent, *record.ModelFacts, error) {
	var reqs []record.RequestEvent
	var model *record.ModelFacts
	err := record.ScanEvents(path, func(l record.Line) error {
		var ev record.Event
		if err := l.DecodeLax(&ev); err != nil {
			return err
		}
		switch ev.Event {
		case record.EventRequest:
			if ev.Request == nil {
				return &record.PosError{File: path, Line: l.No, Col: 1, Err: errors.New(`request event without "request"`)}
			}
			reqs = append(reqs, *ev.Request)
		case record.EventModel:
			model = ev.Model
		}
		return nil
	})
	return reqs, model, err
}

// writeRequests writes the per-request file atomically: a reader never
// sees half of it, and an encoding or disk error leaves no file.
func writeRequests(path string, reqs []RequestEnergy) error {
	return atomicfile.Write(path, func(out io.Writer) error {
		w := record.NewWriter(out)
		for i := range reqs {
			if err := w.Write(&reqs[i]); err != nil {
				return err
			}
		}
		return w.Flush()
	})
}
