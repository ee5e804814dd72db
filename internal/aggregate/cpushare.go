package aggregate

import (
	"fmt"
	"math"
	"strings"

	"github.com/llem/llem/internal/cpuattr"
	"github.com/llem/llem/internal/record"
)

// Attribution modes of CPU energy (Options.Attribution).
const (
	AttributionProcess = "process" // the run's share of each interval's CPU energy (the default)
	AttributionMachine = "machine" // the whole machine's CPU energy
)

// machineSuffix names the companion device that keeps a CPU device's
// whole-machine readings beside its attributed ones.
const machineSuffix = "#machine"

// shareSource attributes the CPU devices' energy to the run. A CPU device
// (rapl, estimate) whose rows carry the run's and the machine's busy CPU
// time (run_cpu_s, machine_cpu_s) becomes the run's share: over each
// interval between two of its rows, energy × Δrun / Δmachine (at most 1,
// the excess carried to the next interval: cpuattr.Share), summed into a
// counter; its power is scaled by the same share. The unchanged readings go on as the companion
// device "<name>#machine", so the machine-wide figure is computed beside
// it. Rows without CPU time take the device's last share. Devices without
// CPU time in any row, and every device in machine mode, pass unchanged:
// machine mode only records which devices had CPU time.
type shareSource struct {
	in      Source
	process bool
	devs    []DeviceInfo
	state   []*shareDev // per inner device; nil until seen with CPU time or as a non-CPU device
	outIdx  []int32     // inner device → outer index
	rows    Rows
	cpuTime map[string]bool // devices whose rows carry CPU time
}

type shareDev struct {
	cpu          bool  // a CPU device whose rows carry CPU time
	machine      int32 // outer index of its companion (process mode)
	started      bool
	prevE        float64
	prevR, prevM float64
	haveCPU      bool
	accE         float64
	share        float64
	carry        float64 // run CPU time not yet matched by the machine's (cpuattr.Share)
}

func newShareSource(in Source, mode string) *shareSource {
	return &shareSource{in: in, process: mode != AttributionMachine, cpuTime: map[string]bool{}}
}

func (s *shareSource) Devices() []DeviceInfo { return s.devs }
func (s *shareSource) IntervalNS() int64     { return s.in.IntervalNS() }
func (s *shareSource) Close() error          { return s.in.Close() }

// CPUTime tells whether a device's rows carried the run's CPU time.
func (s *shareSource) CPUTime(dev string) bool { return s.cpuTime[dev] }

func (s *shareSource) Next() (*Rows, error) {
	in, err := s.in.Next()
	if err != nil {
		return nil, err
	}
	n := in.Len()
	if len(in.Dev) != n || len(in.PowerW) != n || len(in.EnergyJ) != n {
		return nil, fmt.Errorf("sample batch has columns of different lengths")
	}
	r := &s.rows
	r.reset()
	for i := 0; i < n; i++ {
		d := int(in.Dev[i])
		if d < 0 || d >= len(s.in.Devices()) {
			return nil, fmt.Errorf("sample row %d names device %d of %d", i, d, len(s.in.Devices()))
		}
		st := s.device(d, in, i)
		r.copyRow(in, i, s.outIdx[d])
		if !st.cpu {
			continue
		}
		if s.process {
			r.copyRow(in, i, st.machine)
			st.attribute(r, len(r.T)-2, in, i)
		}
	}
	return r, nil
}

// device is the state of inner device d, set up at its first row: a CPU
// device is one whose first row carries CPU time.
func (s *shareSource) device(d int, in *Rows, i int) *shareDev {
	for len(s.state) <= d {
		s.state = append(s.state, nil)
		s.outIdx = append(s.outIdx, -1)
	}
	if st := s.state[d]; st != nil {
		return st
	}
	info := s.in.Devices()[d]
	st := &shareDev{}
	s.state[d] = st
	s.outIdx[d] = int32(len(s.devs))
	s.devs = append(s.devs, info)
	if (info.Source == "rapl" || info.Source == "estimate") && in.hasCPUTime(i) && !strings.HasSuffix(info.Name, machineSuffix) {
		st.cpu = true
		s.cpuTime[info.Name] = true
		if s.process {
			s.devs[s.outIdx[d]].WrapJ = 0 // the attributed counter is no hardware counter
			m := info
			m.Name += machineSuffix
			st.machine = int32(len(s.devs))
			s.devs = append(s.devs, m)
		}
	}
	return st
}

// attribute turns out-row k (a copy of in-row i) into the run's share.
func (st *shareDev) attribute(out *Rows, k int, in *Rows, i int) {
	if in.hasCPUTime(i) {
		rc, mc := in.RunCPU[i], in.MachineCPU[i]
		if st.haveCPU {
			st.share, st.carry = cpuattr.Share(rc-st.prevR, mc-st.prevM, st.carry)
		}
		st.prevR, st.prevM, st.haveCPU = rc, mc, true
	}
	if out.EnergyOK[k] {
		e := in.EnergyJ[i]
		if st.started {
			st.accE += (e - st.prevE) * st.share
		}
		st.prevE, st.started = e, true
		out.EnergyJ[k] = st.accE
	}
	out.PowerW[k] *= st.share
}

// hasCPUTime tells whether row i carries both CPU times; columns of
// another length than the batch's are taken as absent.
func (r *Rows) hasCPUTime(i int) bool {
	n := len(r.T)
	if len(r.RunCPU) != n || len(r.MachineCPU) != n || r.RunCPUOK != nil && len(r.RunCPUOK) != n || r.MachineOK != nil && len(r.MachineOK) != n {
		return false
	}
	return (r.RunCPUOK == nil || r.RunCPUOK[i]) && (r.MachineOK == nil || r.MachineOK[i])
}

func (r *Rows) reset() {
	r.T, r.Dev, r.PowerW, r.PowerOK, r.EnergyJ, r.EnergyOK = r.T[:0], r.Dev[:0], r.PowerW[:0], r.PowerOK[:0], r.EnergyJ[:0], r.EnergyOK[:0]
	r.TempC, r.TempOK, r.Throttle, r.ThrotOK = r.TempC[:0], r.TempOK[:0], r.Throttle[:0], r.ThrotOK[:0]
}

// copyRow appends row i of in as a row of outer device dev, every
// validity made explicit.
func (r *Rows) copyRow(in *Rows, i int, dev int32) {
	r.T = append(r.T, in.T[i])
	r.Dev = append(r.Dev, dev)
	r.PowerW = append(r.PowerW, in.PowerW[i])
	r.PowerOK = append(r.PowerOK, in.PowerOK == nil || in.PowerOK[i])
	r.EnergyJ = append(r.EnergyJ, in.EnergyJ[i])
	r.EnergyOK = append(r.EnergyOK, in.EnergyOK == nil || in.EnergyOK[i])
	var temp float64
	var thr uint64
	tOK, hOK := false, false
	if in.TempC != nil {
		temp, tOK = in.TempC[i], in.TempOK == nil || in.TempOK[i]
	}
	if in.Throttle != nil {
		thr, hOK = in.Throttle[i], in.ThrotOK == nil || in.ThrotOK[i]
	}
	r.TempC, r.TempOK = append(r.TempC, temp), append(r.TempOK, tOK)
	r.Throttle, r.ThrotOK = append(r.Throttle, thr), append(r.ThrotOK, hOK)
}

// pairMachine hangs each companion "#machine" track on its device's track
// and marks the devices whose rows carried CPU time.
func pairMachine(tracks []*DeviceTrack, src *shareSource) []*DeviceTrack {
	by := map[string]*DeviceTrack{}
	out := tracks[:0:0]
	for _, tr := range tracks {
		if !strings.HasSuffix(tr.Info.Name, machineSuffix) {
			by[tr.Info.Name] = tr
			tr.CPUTime = src.CPUTime(tr.Info.Name)
			out = append(out, tr)
		}
	}
	for _, tr := range tracks {
		if name, ok := strings.CutSuffix(tr.Info.Name, machineSuffix); ok && by[name] != nil {
			by[name].Machine = tr
		}
	}
	return out
}

// attribution is how one CPU device's energy over one window was
// attributed: the mode, the whole machine's energy and the run's share of
// it (process attribution only).
type attribution struct {
	mode     string
	machineJ *float64
	share    *float64
}

// attributionOver works out a device's attribution over window w. A
// device without CPU time has none; in machine mode it is named only.
func attributionOver(tr *DeviceTrack, w record.Window, mode string) attribution {
	switch {
	case !tr.CPUTime:
		return attribution{}
	case tr.Machine == nil:
		return attribution{mode: AttributionMachine}
	}
	a := attribution{mode: AttributionProcess, machineJ: windowEnergy(tr.Machine, w)}
	if run := windowEnergy(tr, w); run != nil && a.machineJ != nil && *a.machineJ > 0 {
		a.share = ptr(math.Min(1, math.Max(0, *run / *a.machineJ)))
	}
	return a
}

// fill names the attribution in the device's record.
func (a attribution) fill(de *record.DeviceEnergy) {
	de.Attribution, de.MachineJ, de.CPUShare = a.mode, a.machineJ, a.share
}

// windowEnergy is a track's energy over w as deviceEnergy chooses it: the
// counter where it covers the window, else the power integral.
func windowEnergy(tr *DeviceTrack, w record.Window) *float64 {
	sp := tr.Curve.Span(w.StartNS, w.EndNS)
	d := w.EndNS - w.StartNS
	switch {
	case sp.CounterJ != nil && sp.CtrOutNS < d:
		return sp.CounterJ
	case sp.IntegralJ != nil && sp.IntOutNS < d:
		return sp.IntegralJ
	}
	return nil
}

// machineScopes sets machine_gross_j beside the gross of every scope with
// a process-attributed device (its devices' whole-machine energy, or their
// gross where not attributed), and of the total when any of its scopes has
// one.
func machineScopes(pe *record.PhaseEnergy, totalScopes []string) {
	sums := map[string]*float64{}
	attributed := map[string]bool{}
	for _, de := range pe.Devices {
		v := de.EnergyJ
		if de.Attribution == AttributionProcess {
			v, attributed[de.Scope] = de.MachineJ, true
		}
		if _, ok := sums[de.Scope]; !ok {
			sums[de.Scope] = ptr(0)
		}
		sums[de.Scope] = addp(sums[de.Scope], v)
	}
	anyScope := false
	for name, s := range pe.Scopes {
		if attributed[name] {
			s.MachineGrossJ, anyScope = sums[name], true
		}
	}
	t := pe.Scopes[record.ScopeTotal]
	if !anyScope || t == nil {
		return
	}
	sum := ptr(0)
	for _, name := range totalScopes {
		s := pe.Scopes[name]
		v := s.GrossJ
		if s.MachineGrossJ != nil || attributed[name] {
			v = s.MachineGrossJ
		}
		sum = addp(sum, v)
	}
	t.MachineGrossJ = sum
}

// runAttribution names the run's CPU attribution: the mode when any
// device carried the run's CPU time, else "".
func runAttribution(tracks []*DeviceTrack, mode string) string {
	for _, tr := range tracks {
		if tr.CPUTime {
			if mode == AttributionMachine {
				return AttributionMachine
			}
			return AttributionProcess
		}
	}
	return ""
}

// wpcSourceText says where the estimate's per-core figure came from.
func wpcSourceText(src string) string {
	switch src {
	case "configured":
		return "configured"
	case "tdp_table":
		return "the CPU model's TDP / hardware threads"
	case "default":
		return "the default: the CPU model is not in llem's TDP table"
	}
	return "source not stated"
}

// joinAttribution folds one more cycle's attribution into a config's:
// the same everywhere is that, different ones are "mixed".
func joinAttribution(acc, next string, first bool) string {
	if first || acc == next {
		return next
	}
	return "mixed"
}
