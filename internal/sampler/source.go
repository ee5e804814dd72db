package sampler

import (
	"github.com/llem/llem/internal/power"
)

// DeviceInfo describes one sampled device (see power.Device).
type DeviceInfo = power.Device

// Source is one kind of sensor. Read is called once per tick from one
// goroutine; it appends one sample per live device to out, taking each
// row's timestamp at its read. A device that fails for good is dropped by
// the source after one warning; the other devices go on.
type Source interface {
	Name() string
	Devices() []DeviceInfo
	Read(out []power.Sample) []power.Sample
	Close() error
}

// counter turns a raw cumulative reading into energy since the first read,
// correcting wraparound, and power from the previous read.
type counter struct {
	started bool
	first   float64 // J
	last    float64 // J, raw
	acc     float64 // J since start
	lastT   int64
	wrapJ   float64 // counter modulus; 0 = never wraps
}

// add records raw (J) at t (ns) and returns energy since start and, from
// the second read on, power over the last interval.
func (c *counter) add(t int64, raw float64) (energyJ, powerW float64, havePower bool) {
	if !c.started {
		c.started, c.first, c.last, c.lastT = true, raw, raw, t
		return 0, 0, false
	}
	d := raw - c.last
	if d < 0 && c.wrapJ > 0 {
		d += c.wrapJ
	}
	if d < 0 { // a counter that went backwards without a known range: a reset
		d = 0
	}
	c.acc += d
	dt := float64(t-c.lastT) / 1e9
	c.last, c.lastT = raw, t
	if dt > 0 {
		return c.acc, d / dt, true
	}
	return c.acc, 0, false
}
