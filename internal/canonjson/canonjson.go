// Package canonjson writes JSON in the canonical form of RFC 8785 (JSON
// Canonicalization Scheme): object members sorted by the UTF-16 code units of
// their names, no insignificant whitespace, strings with the minimal escaping,
// and numbers in the shortest form that round-trips an IEEE-754 double, written
// the way ECMAScript's Number.prototype.toString writes them (1.0 → 1,
// 1e21 → 1e+21, 0.000001 → 0.000001, 1e-7 → 1e-7).
//
// llem hashes configs over this form, so that an id can be recomputed by any
// RFC 8785 implementation from the "config" object of a record.
package canonjson

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxSafeInt is the largest integer a double holds exactly (2^53). Integers
// beyond it cannot be written canonically without losing digits.
const MaxSafeInt = 1 << 53

// AppendFloat appends f as an RFC 8785 number. NaN and infinities have no
// JSON form and are an error.
func AppendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("canonjson: %v has no JSON form", f)
	}
	if f == 0 { // also -0
		return append(dst, '0'), nil
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Integral values below 2^53 print as plain integers (the common case, fast).
	if f < MaxSafeInt && f == math.Trunc(f) && f < 1e21 {
		return strconv.AppendInt(dst, int64(f), 10), nil
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d.ddde±XX, shortest round-trip digits
	var digits [24]byte
	k := 0
	i := 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[k] = e[i]
			k++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	n := exp + 1 // value = 0.d1d2…dk × 10^n
	s := digits[:k]
	switch {
	case k <= n && n <= 21:
		dst = append(dst, s...)
		for j := 0; j < n-k; j++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, s[:n]...)
		dst = append(dst, '.')
		dst = append(dst, s[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for j := 0; j < -n; j++ {
			dst = append(dst, '0')
		}
		dst = append(dst, s...)
	default:
		dst = append(dst, s[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, s[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '-')
		}
		x := n - 1
		if x < 0 {
			x = -x
		}
		dst = strconv.AppendInt(dst, int64(x), 10)
	}
	return dst, nil
}

// AppendInt appends an integer. Integers beyond ±2^53 are an error: RFC 8785
// numbers are doubles, and such an integer would not survive the round trip.
func AppendInt(dst []byte, i int64) ([]byte, error) {
	if i > MaxSafeInt || i < -MaxSafeInt {
		return dst, fmt.Errorf("canonjson: integer %d is beyond ±2^53", i)
	}
	return strconv.AppendInt(dst, i, 10), nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string with RFC 8785 escaping: only '"',
// '\\' and control characters are escaped (\b \t \n \f \r short, others as
// \u00xx). Invalid UTF-8 is replaced by U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Less orders object member names as RFC 8785 requires: by their UTF-16 code
// units. For names in the Basic Multilingual Plane this equals byte order;
// it differs only when a name holds characters above U+FFFF.
func Less(a, b string) bool {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		ra, na := utf8.DecodeRuneInString(a[i:])
		rb, nb := utf8.DecodeRuneInString(b[j:])
		if ra == rb {
			i += na
			j += nb
			continue
		}
		ua, ub := units(ra), units(rb)
		for k := 0; k < len(ua) && k < len(ub); k++ {
			if ua[k] != ub[k] {
				return ua[k] < ub[k]
			}
		}
		return len(ua) < len(ub)
	}
	// One is a prefix of the other: the shorter sorts first.
	return len(a) < len(b)
}

func units(r rune) []uint16 {
	if r >= 0x10000 {
		r1, r2 := utf16.EncodeRune(r)
		return []uint16{uint16(r1), uint16(r2)}
	}
	return []uint16{uint16(r)}
}

// SortKeys sorts member names in RFC 8785 order.
func SortKeys(keys []string) { sort.Slice(keys, func(i, j int) bool { return Less(keys[i], keys[j]) }) }

// Append appends a generic JSON value: nil, bool, string, float64, float32,
// int, int64, json.Number, map[string]any, []any, []string.
func Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return AppendString(dst, x), nil
	case float64:
		return AppendFloat(dst, x)
	case float32:
		return AppendFloat(dst, float64(x))
	case int:
		return AppendInt(dst, int64(x))
	case int64:
		return AppendInt(dst, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return dst, fmt.Errorf("canonjson: number %q: %w", x, err)
		}
		return AppendFloat(dst, f)
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, s)
		}
		return append(dst, ']'), nil
	case []any:
		dst = append(dst, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = Append(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		SortKeys(keys)
		dst = append(dst, '{')
		var err error
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			if dst, err = Append(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("canonjson: unsupported type %T", v)
}

// Canonicalize rewrites any JSON text in canonical form. Numbers are read as
// doubles, as RFC 8785 requires.
func Canonicalize(data []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return Append(nil, v)
}
