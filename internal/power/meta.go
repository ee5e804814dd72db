package power

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/llem/llem/internal/record"
)

// parse reads the schema metadata. A key llem-sample writes that holds
// something else than it writes is an error naming the key; keys another
// sampler may use instead (interval_ms, interval_s, interval) are read too.
func (m *Meta) parse(md arrow.Metadata) error {
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	m.Host = get(MetaHost)
	m.SamplerVersion = get(MetaSamplerVersion)
	m.PowerField = get(MetaPowerField)
	m.Attribution = get(MetaAttribution)
	var err error
	if m.IntervalNS, err = intervalFromMeta(md); err != nil {
		return err
	}
	if v := get(MetaStartNS); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaStartNS, err)
		}
		m.StartNS = n
	}
	if v := get(MetaSources); v != "" {
		m.Sources = strings.Split(v, ",")
	}
	m.Estimate = get(MetaEstimate) == "true"
	if v := get(MetaDevices); v != "" {
		if err := json.Unmarshal([]byte(v), &m.Devices); err != nil {
			return fmt.Errorf("%s: %w", MetaDevices, err)
		}
	}
	if v := get(MetaHostInfo); v != "" {
		m.HostInfo = new(record.Host)
		if err := json.Unmarshal([]byte(v), m.HostInfo); err != nil {
			return fmt.Errorf("%s: %w", MetaHostInfo, err)
		}
	}
	return nil
}

// intervalFromMeta reads the sampling interval under any of the names a
// sampler may use: interval_ns (integer ns, as llem-sample writes it),
// interval_ms, interval_s or interval, each a number in its unit or a Go
// duration ("50ms"). 0 when none is given; an interval_ns that is neither
// is an error, any other unreadable one is ignored (it is not ours).
func intervalFromMeta(md arrow.Metadata) (int64, error) {
	if i := md.FindKey(MetaIntervalNS); i >= 0 {
		v := strings.TrimSpace(md.Values()[i])
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, nil
		}
		if n, ok := parseInterval(v, 1); ok {
			return n, nil
		}
		return 0, fmt.Errorf("%s: %q is not a number of nanoseconds", MetaIntervalNS, v)
	}
	for _, k := range []struct {
		key  string
		unit float64
	}{{"interval_ms", 1e6}, {"interval_s", 1e9}, {"interval", 1e9}} {
		if i := md.FindKey(k.key); i >= 0 {
			if n, ok := parseInterval(strings.TrimSpace(md.Values()[i]), k.unit); ok {
				return n, nil
			}
		}
	}
	return 0, nil
}

// parseInterval reads a positive Go duration or a positive number of unit ns.
func parseInterval(v string, unit float64) (int64, bool) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return int64(d), true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) || f*unit > 1<<62 {
		return 0, false
	}
	return int64(f * unit), true
}
