package cpuattr

import "testing"

func TestShare(t *testing.T) {
	for _, c := range []struct{ run, machine, carry, share, carried float64 }{
		{1, 4, 0, 0.25, 0},
		{0, 4, 0.5, 0, 0},
		{0, 0, 0, 0, 0},
		{0.01, 0, 0, 1, 0},
		{5, 4, 0, 1, 1},
		{1, 4, 1, 0.5, 0},
		{-1, 4, 1, 0, 0},
	} {
		s, k := Share(c.run, c.machine, c.carry)
		if s != c.share || k != c.carried {
			t.Errorf("Share(%v, %v, %v) = %v, %v; want %v, %v", c.run, c.machine, c.carry, s, k, c.share, c.carried)
		}
	}
}

// Over intervals where the two clocks disagree, the carry keeps the run's
// time: a run that had the machine to itself gets all of its energy.
func TestShareCarryConserves(t *testing.T) {
	runSteps := []float64{0.06, 0.04, 0.05, 0.05, 0.06, 0.04}
	machineSteps := []float64{0.05, 0.05, 0.05, 0.05, 0.05, 0.05} // the same 0.30 s, ticked differently
	carry, weighted := 0.0, 0.0
	for i := range runSteps {
		var s float64
		s, carry = Share(runSteps[i], machineSteps[i], carry)
		weighted += s * machineSteps[i]
	}
	if weighted < 0.3-1e-12 {
		t.Errorf("the run got %.3f s of the machine's 0.30 s", weighted)
	}
}
