package power

// DeviceMean is a device's mean power over a window.
type DeviceMean struct {
	Device  Device
	PowerW  *float64 // nil when the window held no power reading of the device
	Samples int
}

// MeanPower reads the rest of r and returns, per device in r.Devices()
// order, the arithmetic mean of power_w over rows with fromNS <= t <= toNS
// (toNS <= 0: no upper bound). llem-exec uses it for idle baselines.
func MeanPower(r *Reader, fromNS, toNS int64) ([]DeviceMean, error) {
	var sum []float64
	var n []int
	for r.Next() {
		b := r.Batch()
		for len(sum) < len(r.Devices()) {
			sum = append(sum, 0)
			n = append(n, 0)
		}
		for i := 0; i < b.N; i++ {
			if b.T[i] < fromNS || (toNS > 0 && b.T[i] > toNS) || (b.PowerOK != nil && !b.PowerOK[i]) {
				continue
			}
			d := b.Dev[i]
			sum[d] += b.PowerW[i]
			n[d]++
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make([]DeviceMean, len(r.Devices()))
	for i, d := range r.Devices() {
		out[i].Device = d
		if i < len(n) && n[i] > 0 {
			m := sum[i] / float64(n[i])
			out[i].PowerW = &m
			out[i].Samples = n[i]
		}
	}
	return out, nil
}
