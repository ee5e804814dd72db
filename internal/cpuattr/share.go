package cpuattr

// Share is the run's share of the machine's busy CPU time over one
// interval, from the steps of the two counters, and the run's time carried
// to the next interval. The run's time (a cgroup's, to the microsecond) and
// the machine's (/proc/stat, in 10 ms ticks) come from different clocks:
// over a short interval the run's step can exceed the machine's. The share
// is then 1 and the excess is carried into the next interval, so the run's
// time is neither lost (as a plain clamp to 1 would lose it, biasing a run
// that has the machine to itself low) nor counted twice. A step back (a
// process tree that lost an orphan) is no time used and drops the carry;
// where the machine's step is 0 and the run's is not, the share is 1.
//
// llem-sample's summary and llem-aggregate both attribute with it.
func Share(dRun, dMachine, carry float64) (share, carried float64) {
	if dRun <= 0 {
		return 0, 0
	}
	if dMachine <= 0 {
		return 1, 0
	}
	dRun += carry
	if dRun >= dMachine {
		return 1, dRun - dMachine
	}
	return dRun / dMachine, 0
}
