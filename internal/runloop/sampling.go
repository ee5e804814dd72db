package runloop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/sampler"
)

// InternalSampler records with internal/sampler into the run's samples.arrows.
type InternalSampler struct{ Opts sampler.Options }

type internalSession struct {
	f *os.File
	s *sampler.Session
}

// Start opens path and starts sampling into it.
func (is *InternalSampler) Start(path string) (SamplerSession, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	s, err := sampler.Start(is.Opts, f)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &internalSession{f: f, s: s}, nil
}

func (s *internalSession) Stop() (SampleInfo, error) {
	st, err := s.s.Stop()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	info := SampleInfo{Sources: st.Sources}
	for _, d := range st.Devices {
		info.Devices = append(info.Devices, d.Device)
		info.Estimate = info.Estimate || d.Estimate
	}
	for _, d := range st.Summary {
		info.Idle = append(info.Idle, record.BaselineDevice{Device: d.Device.Device, Source: d.Device.Source,
			Scope: d.Device.Scope, PowerW: d.MeanPowerW, Samples: int(d.Samples), Estimate: d.Device.Estimate})
	}
	return info, err
}

// measureBaseline samples the idle machine for dur into <dir>/baseline-<ns>.arrows
// and writes the baseline record beside it (baseline-<ns>.json).
func measureBaseline(ctx context.Context, o Options, st *study, dur time.Duration) (*record.Baseline, error) {
	start := time.Now()
	id := fmt.Sprintf("baseline-%d", start.UnixNano())
	arrows := filepath.Join(st.dir, id+".arrows")
	if abs, err := filepath.Abs(arrows); err == nil {
		arrows = abs
	}
	sess, err := o.Sampler.Start(arrows)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(dur)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	info, err := sess.Stop()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		os.Remove(arrows)
		return nil, ctx.Err()
	}
	end := time.Now()
	b := &record.Baseline{Kind: record.KindBaseline, V: record.Version, ID: id, Host: o.Host.Hostname,
		Method: "measured", Window: record.Window{StartNS: start.UnixNano(), EndNS: end.UnixNano()},
		DurationS: end.Sub(start).Seconds(), SampleFile: arrows, Devices: info.Idle}
	if b.Devices == nil {
		b.Devices = []record.BaselineDevice{}
	}
	if len(st.runs) > 0 {
		b.Study, b.StudyHash = st.runs[0].Study, st.runs[0].StudyHash
	}
	if err := writeJSONAtomic(filepath.Join(st.dir, id+".json"), b); err != nil {
		return nil, err
	}
	return b, nil
}

// loadBaselines reads the baseline records a study directory holds, oldest first.
func loadBaselines(dir string) []*record.Baseline {
	m, _ := filepath.Glob(filepath.Join(dir, "baseline-*.json"))
	var out []*record.Baseline
	for _, p := range m {
		var b record.Baseline
		if readJSON(p, &b) == nil && strings.HasPrefix(b.ID, "baseline-") {
			out = append(out, &b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Window.StartNS < out[j].Window.StartNS })
	return out
}

func idleOf(m power.DeviceMean) record.BaselineDevice {
	return record.BaselineDevice{Device: m.Device.Device, Source: m.Device.Source, Scope: m.Device.Scope,
		PowerW: m.PowerW, Samples: m.Samples, Estimate: m.Device.Estimate}
}
