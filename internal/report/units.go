package report

import (
	"math"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/config"
)

// Dash stands for an unknown value (null in the records), never 0.
const Dash = "—"

var prefixes = []struct {
	exp int
	sym string
}{{-15, "f"}, {-12, "p"}, {-9, "n"}, {-6, "µ"}, {-3, "m"}, {0, ""}, {3, "k"}, {6, "M"}, {9, "G"}, {12, "T"}, {15, "P"}, {18, "E"}}

// prefixFor returns the SI exponent (a multiple of 3) for v's magnitude.
func prefixFor(v float64) int {
	a := math.Abs(v)
	if a == 0 || math.IsNaN(a) || math.IsInf(a, 0) {
		return 0
	}
	e := int(math.Floor(math.Log10(a)/3)) * 3
	// 999.7 rounds to "1.00e3" at 3 digits: move to the next prefix.
	if r := a / math.Pow10(e); r >= 999.5 {
		e += 3
	}
	return max(-15, min(18, e))
}

func prefixSym(e int) string {
	for _, p := range prefixes {
		if p.exp == e {
			return p.sym
		}
	}
	return ""
}

// sig3 formats x (0 ≤ |x| < 1000) with three significant digits and returns
// the number of decimals used.
func sig3(x float64) (string, int) {
	a := math.Abs(x)
	dec := 2
	switch {
	case a >= 99.95:
		dec = 0
	case a >= 9.995:
		dec = 1
	}
	return strconv.FormatFloat(x, 'f', dec, 64), dec
}

// FormatSI formats v with unit and an SI prefix, three significant digits:
// 0.0055 J → "5.50 mJ", 3627.9 tok/s → "3.63 ktok/s". nil → "—".
func FormatSI(v *float64, unit string) string {
	if v == nil || math.IsNaN(*v) {
		return Dash
	}
	return formatSI(*v, unit)
}

func formatSI(v float64, unit string) string {
	if config.IsCurrency(unit) {
		return formatMoney(v, unit)
	}
	switch unit {
	case "rel":
		s, _ := sig3(v * 100)
		return s + " %"
	case "count":
		if math.Abs(v) < 1e5 && v == math.Trunc(v) {
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
		unit = ""
	}
	if v == 0 {
		return joinUnit("0", "", unit)
	}
	e := unitPrefix(prefixFor(v), v, unit)
	s, _ := sig3(v / math.Pow10(e))
	return joinUnit(s, prefixSym(e), unit)
}

// unitPrefix keeps request rates between 0.01 and 1 unprefixed: "0.42 req/s"
// reads better than "420 mreq/s".
func unitPrefix(e int, v float64, unit string) int {
	if unit == "req/s" && e < 0 && math.Abs(v) >= 0.01 {
		return 0
	}
	return e
}

func joinUnit(num, prefix, unit string) string {
	if prefix+unit == "" {
		return num
	}
	return num + " " + prefix + unit
}

// FormatCI formats a mean with its 95 % half width in the mean's prefix:
// "5.15 ± 0.20 J". A nil half width leaves the mean alone.
func FormatCI(mean, half *float64, unit string) string {
	if mean == nil || math.IsNaN(*mean) {
		return Dash
	}
	if half == nil || math.IsNaN(*half) || unit == "count" {
		return formatSI(*mean, unit)
	}
	if config.IsCurrency(unit) {
		return strings.TrimSuffix(formatMoney(*mean, unit), " "+unit) + " ± " + formatMoney(*half, unit)
	}
	if unit == "rel" {
		m, dec := sig3(*mean * 100)
		return m + " ± " + strconv.FormatFloat(*half*100, 'f', dec, 64) + " %"
	}
	if *mean == 0 && *half == 0 {
		return formatSI(0, unit)
	}
	e := unitPrefix(prefixFor(*mean), *mean, unit)
	if *mean == 0 {
		e = prefixFor(*half)
	}
	m, dec := sig3(*mean / math.Pow10(e))
	h := *half / math.Pow10(e)
	hs := strconv.FormatFloat(h, 'f', dec, 64)
	if h != 0 && strings.Trim(hs, "0.") == "" {
		// The half width vanishes at the mean's precision: show its first digits.
		hs = strconv.FormatFloat(h, 'g', 2, 64)
	}
	return joinUnit(m+" ± "+hs, prefixSym(e), unit)
}

// rawNum formats a number for CSV: shortest exact representation; "" for null.
func rawNum(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}
