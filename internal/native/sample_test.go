package native

import (
	"math"
	"testing"
)

func logitsOf(v ...float32) []float32 { return append([]float32(nil), v...) }

func TestSamplerFilters(t *testing.T) {
	base := []float32{1, 3, 2, 3, -1, 0.5}
	s := newSampler(len(base))
	for _, c := range []struct {
		name string
		d    Decoding
		ok   map[int32]bool // the ids that may come out
	}{
		{"greedy picks the first maximum", Decoding{Greedy: true, TopP: 1, RepetitionPenalty: 1}, map[int32]bool{1: true}},
		{"top_k 2 keeps the two 3s", Decoding{Temperature: 1, TopK: 2, TopP: 1, RepetitionPenalty: 1}, map[int32]bool{1: true, 3: true}},
		{"top_k 1 is greedy", Decoding{Temperature: 5, TopK: 1, TopP: 1, RepetitionPenalty: 1}, map[int32]bool{1: true}},
		{"tiny top_p keeps the best", Decoding{Temperature: 1, TopP: 0.01, RepetitionPenalty: 1}, map[int32]bool{1: true}},
		{"min_p 0.3 drops what is < 0.3 × the best", Decoding{Temperature: 1, TopP: 1, MinP: 0.3, RepetitionPenalty: 1}, map[int32]bool{1: true, 3: true, 2: true}},
	} {
		s.reset(1)
		seen := map[int32]int{}
		for range 400 {
			seen[s.next(logitsOf(base...), c.d)]++
		}
		for id := range seen {
			if !c.ok[id] {
				t.Errorf("%s: sampled id %d (%v)", c.name, id, seen)
			}
		}
		if len(seen) != len(c.ok) {
			t.Errorf("%s: sampled %v, want every one of %v", c.name, seen, c.ok)
		}
	}
}

// TestSamplerFrequencies: sampling at temperature T follows softmax(l/T).
func TestSamplerFrequencies(t *testing.T) {
	l := []float32{0, 1, 2, 0.5}
	const T, n = 0.7, 40000
	s := newSampler(len(l))
	s.reset(99)
	counts := make([]float64, len(l))
	for range n {
		counts[s.next(logitsOf(l...), Decoding{Temperature: T, TopP: 1, RepetitionPenalty: 1})]++
	}
	var z float64
	for _, v := range l {
		z += math.Exp(float64(v) / T)
	}
	for i, v := range l {
		p := math.Exp(float64(v)/T) / z
		sd := math.Sqrt(p * (1 - p) / n)
		if got := counts[i] / n; math.Abs(got-p) > 5*sd {
			t.Errorf("id %d: frequency %.4f, want %.4f ± %.4f", i, got, p, 5*sd)
		}
	}
}

func TestRepetitionPenalty(t *testing.T) {
	s := newSampler(4)
	s.reset(0)
	s.see(1)
	s.see(3)
	l := logitsOf(1, 2, 0.5, -1)
	d := Decoding{Greedy: true, TopP: 1, RepetitionPenalty: 4}
	if got := s.next(l, d); got != 0 { // 2/4 = 0.5 < 1
		t.Fatalf("penalised greedy picked %d, want 0", got)
	}
	if l[1] != 0.5 || l[3] != -4 || l[0] != 1 {
		t.Fatalf("penalised logits %v", l)
	}
}

func TestTopKOrder(t *testing.T) {
	l := []float32{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}
	got := topK(l, make([]int32, len(l)), 5)
	want := []int32{5, 7, 4, 8, 10}
	if !equal(got, want) {
		t.Fatalf("topK = %v, want %v", got, want)
	}
	all := topK(l, make([]int32, len(l)), len(l))
	for i := 1; i < len(all); i++ {
		if before(l, all[i], all[i-1]) {
			t.Fatalf("full sort out of order: %v", all)
		}
	}
}

func TestTokenizer(t *testing.T) {
	for _, v := range []int{257, 300, 512, 2048} {
		tk := NewTokenizer(v)
		s := "Hello, wörld! \x00\xff"
		ids := tk.Encode(nil, s, -1)
		if len(ids) != len(s) {
			t.Fatalf("vocab %d: %d ids for %d bytes", v, len(ids), len(s))
		}
		if got := string(tk.Decode(nil, ids)); got != s {
			t.Fatalf("vocab %d: round trip %q, want %q", v, got, s)
		}
		if got := tk.Encode(nil, s, 3); len(got) != 3 {
			t.Fatalf("limit 3 gave %d ids", len(got))
		}
		if got := tk.Encode(nil, "", -1); len(got) != 1 || got[0] != EOS {
			t.Fatalf("empty prompt encodes to %v", got)
		}
		// every id is reachable: encode every (p2, p1, b) context
		used := make([]bool, v)
		used[EOS] = true
		buf := []byte{0, 0, 0}
		for p2 := 0; p2 < 4; p2++ { // banks ≤ 8 here: p1 alone spans them
			for p1 := 0; p1 < 256; p1++ {
				for b := 0; b < 256; b++ {
					buf[0], buf[1], buf[2] = byte(p2), byte(p1), byte(b)
					ids := tk.Encode(nil, string(buf), -1)
					if ids[2] < 0 || int(ids[2]) >= v {
						t.Fatalf("vocab %d: id %d out of range", v, ids[2])
					}
					used[ids[2]] = true
				}
			}
		}
		for id, u := range used {
			if !u {
				t.Fatalf("vocab %d: id %d is never produced", v, id)
			}
		}
	}
}
