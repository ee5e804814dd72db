package aggregate

import (
	"math"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

// Constant 200 W over a 10 s window on a 100 ms grid (20 J per interval).
// The energy of each interval goes to the tokens in flight there, intervals
// with nothing in flight are shared by total tokens, and the parts add up to
// the window's 2000 J.
func TestAttributionKnownShares(t *testing.T) {
	s := sample(constant, 100*ms, 12000*ms, nil)
	for i := range s.p {
		s.p[i], s.e[i] = 200, 200*sec(s.t[i])
	}
	w := record.Window{StartNS: 1000 * ms, EndNS: 11000 * ms}
	grid := makeGrid(w, 100*ms, 20000)
	src := &SliceSource{Devs: []DeviceInfo{{Name: "GPU-x", Source: "nvml"}}, Interval: 100 * ms}
	rows := &Rows{T: s.t, PowerW: s.p, EnergyJ: s.e, Dev: make([]int32, len(s.t))}
	src.Batches = []*Rows{rows}
	tracks, err := Pass(src, SortedUnique(append([]int64{w.StartNS, w.EndNS}, grid...)), []record.Window{w})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s float64) int64 { return w.StartNS + int64(s*1e9) }
	itl := func(n int) []int64 {
		g := make([]int64, n)
		for i := range g {
			g[i] = 100 * ms
		}
		return g
	}
	// A: prefill 0–1 s (100 tokens), decode 1–5 s (40 steps); B: prefill 4–5 s
	// (50 tokens), decode 5–6 s (10 steps), then nothing 6–7 s, decode 7–10 s (30 steps).
	a := record.RequestEvent{ID: 0, InputTokens: 100, OutputTokens: 41, TStartNS: at(0), TFirstNS: at(1), TEndNS: at(5), ITLNS: itl(40)}
	bITL := append(itl(10), 1000*ms)
	bITL = append(bITL, itl(29)...)
	b := record.RequestEvent{ID: 1, InputTokens: 50, OutputTokens: 41, TStartNS: at(4), TFirstNS: at(5), TEndNS: at(10), ITLNS: bITL}
	e := &record.Energy{Basis: "gpu", Phases: map[string]*record.PhaseEnergy{}, Metrics: map[string]*float64{}}
	de, _ := deviceEnergy(tracks[0], phaseWin{"measure", w}, 200*ms, nil, DefaultOptions(), 0, nil)
	e.Phases["measure"] = &record.PhaseEnergy{Devices: []record.DeviceEnergy{de}}
	e.Metrics[record.MEnergyJ] = de.EnergyJ
	got := attribute(e, []record.RequestEvent{a, b}, grid, tracks)
	if got == nil {
		t.Fatal("no attribution")
	}
	// 0–1 s A prefills alone: 200 J to A. 1–4 s A decodes alone: 600 J.
	// 4–5 s A decodes 1 token/100 ms while B prefills 5 tokens/100 ms: A 1/6,
	// B 5/6 of 200 J. 5–6 s B decodes alone: 200 J. 6–7 s B's one token over a
	// 1 s gap: 200 J. 7–9.9 s B decodes alone: 580 J. 9.9–10 s nothing in
	// flight: 20 J shared by total tokens (A 100+40, B 50+40).
	wantA := 200 + 600 + 200.0/6 + 20*140.0/230
	wantB := 200*5.0/6 + 200 + 200 + 580 + 20*90.0/230
	for _, c := range []struct {
		got, want float64
		what      string
	}{{got[0].EnergyJ, wantA, "A"}, {got[1].EnergyJ, wantB, "B"}, {got[0].PrefillJ, 200, "A prefill"}, {got[1].PrefillJ, 200 * 5.0 / 6, "B prefill"}} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s: %.6f J, want %.6f", c.what, c.got, c.want)
		}
	}
	if math.Abs(got[0].EnergyJ+got[1].EnergyJ-2000) > 1e-6 {
		t.Errorf("parts sum to %v, want 2000", got[0].EnergyJ+got[1].EnergyJ)
	}
	if *got[0].SimpleJ != 1000 || *got[1].SimpleJ != 1000 {
		t.Errorf("simple estimate %v %v, want 1000 each (equal output tokens)", *got[0].SimpleJ, *got[1].SimpleJ)
	}
}

// A gap with nothing in flight is shared by total tokens.
func TestAttributionIdleShare(t *testing.T) {
	grid := []int64{0, 100, 200, 300}
	sg := segment{a: 0, b: 100, mass: 10}
	var seen []float64
	spread(grid, sg, func(i int, w float64) { seen = append(seen, float64(i), w) })
	if len(seen) != 2 || seen[0] != 0 || seen[1] != 10 {
		t.Errorf("spread %v", seen)
	}
	seen = nil
	spread(grid, segment{a: 50, b: 250, mass: 4}, func(i int, w float64) { seen = append(seen, float64(i), w) })
	if len(seen) != 6 || seen[1] != 1 || seen[3] != 2 || seen[5] != 1 {
		t.Errorf("spread across three intervals %v", seen)
	}
	seen = nil
	spread(grid, segment{a: 150, b: 150, mass: 3}, func(i int, w float64) { seen = append(seen, float64(i), w) })
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 3 {
		t.Errorf("instant %v", seen)
	}
}

// FLOPs of a known model: 2·N·tokens + 2·layers·d_attn·Σ positions.
func TestFLOPs(t *testing.T) {
	m := &record.ModelFacts{NonEmbeddingParameters: i64p(1000), Layers: ip(2), Heads: ip(4), HeadDim: ip(8)}
	reqs := []record.RequestEvent{{InputTokens: 3, OutputTokens: 2}, {InputTokens: 1, OutputTokens: 1}}
	total, attn, method := FLOPs(m, reqs, nil)
	// tokens 5 + 2 = 7; Σ positions = 15 + 3 = 18; attention = 2·2·32·18 = 2304
	if *attn != 2304 || *total != 2*1000*7+2304 {
		t.Errorf("flops %v attention %v", *total, *attn)
	}
	if method == "" {
		t.Error("no method")
	}
	m.ActiveParameters = i64p(500)
	total, _, method = FLOPs(m, reqs, nil)
	if *total != 2*500*7+2304 || !strings.HasPrefix(method, "2 × active") {
		t.Errorf("MoE flops %v (%s)", *total, method)
	}
	m.Layers = nil
	total, attn, _ = FLOPs(m, reqs, nil)
	if attn != nil || *total != 2*500*7 {
		t.Errorf("without layers: %v %v", *total, attn)
	}
	if f, _, _ := FLOPs(&record.ModelFacts{}, reqs, nil); f != nil {
		t.Error("no parameter count should give null FLOPs")
	}
}
