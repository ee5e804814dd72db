package aggregate

import (
	"io"

	"github.com/llem/llem/internal/power"
)

// ArrowSource is a Source over a sample stream file, read by power.Reader
// (which also reads the streams of other samplers in the same long format).
// It holds one record batch at a time. Its devices are listed in the order
// they first appear in the rows; a device the stream's metadata lists but
// no row names is not one.
type ArrowSource struct {
	r     *power.Reader
	devs  []DeviceInfo
	local []int32 // power.Reader device index → index into devs, -1 until seen
	rows  Rows
}

// OpenArrow opens a sample stream file.
func OpenArrow(path string) (Source, error) {
	r, err := power.Open(path)
	if err != nil {
		return nil, err
	}
	return &ArrowSource{r: r}, nil
}

// Truncated tells whether the stream ended inside a message (the sampler
// died or the disk filled mid-batch); the rows before the cut were read.
func (s *ArrowSource) Truncated() bool { return s.r.Truncated() }

func (s *ArrowSource) Devices() []DeviceInfo { return s.devs }
func (s *ArrowSource) IntervalNS() int64     { return s.r.Meta().IntervalNS }
func (s *ArrowSource) Close() error          { return s.r.Close() }

// Next returns the next batch's columns, viewing the reader's.
func (s *ArrowSource) Next() (*Rows, error) {
	if !s.r.Next() {
		if err := s.r.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	b := s.r.Batch()
	r := &s.rows
	r.T, r.PowerW, r.PowerOK, r.EnergyJ, r.EnergyOK = b.T, b.PowerW, b.PowerOK, b.EnergyJ, b.EnergyOK
	r.TempC, r.TempOK, r.Throttle, r.ThrotOK = b.TempC, b.TempOK, b.Throttle, b.ThrotOK
	r.RunCPU, r.RunCPUOK, r.MachineCPU, r.MachineOK = b.RunCPU, b.RunCPUOK, b.MachineCPU, b.MachineOK
	r.Dev = r.Dev[:0]
	for _, d := range b.Dev {
		for int(d) >= len(s.local) {
			s.local = append(s.local, -1)
		}
		if s.local[d] < 0 {
			pd := s.r.Devices()[d]
			s.devs = append(s.devs, DeviceInfo{Name: pd.Device, Source: pd.Source,
				WattsPerCore: pd.WattsPerCore, WattsPerCoreSource: pd.WattsPerCoreSource, CPUModel: pd.CPUModel})
			s.local[d] = int32(len(s.devs) - 1)
		}
		r.Dev = append(r.Dev, s.local[d])
	}
	return r, nil
}
