package sampler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// rapl reads the powercap sysfs tree: <root>/class/powercap/intel-rapl:N
// (package N) and its subzones intel-rapl:N:M named core, uncore or dram.
type rapl struct {
	doms []*raplDom
	warn func(string)
	buf  []byte
}

type raplDom struct {
	info DeviceInfo
	path string   // energy_uj
	f    *os.File // kept open: one pread a tick instead of open, read, close
	c    counter
	dead bool
}

var errNoRAPL = errors.New("no RAPL powercap zones")

// openFile opens sysfs files; a test replaces it to deny permission, which
// file modes cannot do to root.
var openFile = os.Open

func newRAPL(sysfs string, warn func(string)) (*rapl, error) {
	base := filepath.Join(sysfs, "class", "powercap")
	zones, _ := filepath.Glob(filepath.Join(base, "intel-rapl:*"))
	sort.Strings(zones)
	r := &rapl{warn: warn, buf: make([]byte, 64)}
	for _, z := range zones {
		parts := strings.Split(filepath.Base(z), ":")
		if len(parts) < 2 {
			continue
		}
		pkg := parts[1]
		name, err := os.ReadFile(filepath.Join(z, "name"))
		if err != nil {
			continue
		}
		n := strings.TrimSpace(string(name))
		var dev, scope string
		switch {
		case strings.HasPrefix(n, "package"):
			dev, scope = "package-"+pkg, record.ScopeCPUPackage
		case n == "dram":
			dev, scope = "dram-"+pkg, record.ScopeDRAM
		case n == "core":
			dev, scope = "core-"+pkg, record.ScopeCPUCore
		case n == "uncore":
			dev, scope = "uncore-"+pkg, record.ScopeCPUUncore
		default: // psys and others: not a scope llem reports
			continue
		}
		d := &raplDom{info: DeviceInfo{Device: dev, Source: "rapl", Scope: scope}, path: filepath.Join(z, "energy_uj")}
		if b, err := os.ReadFile(filepath.Join(z, "max_energy_range_uj")); err == nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && v > 0 {
				// energy_uj runs 0..max_energy_range_uj, then starts again at 0.
				d.c.wrapJ = (v + 1) / 1e6
				d.info.WrapJ = d.c.wrapJ
			}
		}
		if _, err := r.readUJ(d.path); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				warn(fmt.Sprintf("rapl: no permission to read %s (energy_uj is root-only since Linux 5.10; run as root or make it readable); RAPL not sampled", d.path))
				return nil, errNoRAPL
			}
			warn(fmt.Sprintf("rapl: %s: %v; domain skipped", d.path, err))
			continue
		}
		r.doms = append(r.doms, d)
	}
	if len(r.doms) == 0 {
		return nil, errNoRAPL
	}
	return r, nil
}

func (r *rapl) Name() string { return "rapl" }
func (r *rapl) Close() error {
	for _, d := range r.doms {
		if d.f != nil {
			d.f.Close()
			d.f = nil
		}
	}
	return nil
}
func (r *rapl) Devices() []DeviceInfo {
	out := make([]DeviceInfo, len(r.doms))
	for i, d := range r.doms {
		out[i] = d.info
	}
	return out
}

func (r *rapl) readUJ(path string) (float64, error) {
	f, err := openFile(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return r.preadUJ(f)
}

// preadUJ reads a sysfs counter from offset 0 of an open file.
func (r *rapl) preadUJ(f *os.File) (float64, error) {
	n, err := f.ReadAt(r.buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(r.buf[:n])), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return float64(v), nil
}

func (r *rapl) Read(out []power.Sample) []power.Sample {
	for _, d := range r.doms {
		if d.dead {
			continue
		}
		if d.f == nil {
			f, err := openFile(d.path)
			if err != nil {
				r.warn(fmt.Sprintf("rapl: %s: %v; %s no longer sampled", d.path, err, d.info.Device))
				d.dead = true
				continue
			}
			d.f = f
		}
		uj, err := r.preadUJ(d.f)
		t := time.Now().UnixNano()
		if err != nil {
			r.warn(fmt.Sprintf("rapl: %s: %v; %s no longer sampled", d.path, err, d.info.Device))
			d.dead = true
			continue
		}
		e, p, ok := d.c.add(t, uj/1e6)
		s := power.Sample{T: t, Source: "rapl", Device: d.info.Device, EnergyJ: e, PowerW: p, Has: power.HasEnergy}
		if ok {
			s.Has |= power.HasPower
		}
		out = append(out, s)
	}
	return out
}
