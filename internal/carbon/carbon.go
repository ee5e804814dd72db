// Package carbon holds the bundled table of yearly average grid carbon
// intensities (regions.csv) that llem-aggregate --region reads. The table is
// data, kept beside the code so that every figure names its source and year;
// docs/aggregate.md lists the sources.
package carbon

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed regions.csv
var regionsCSV string

// Region is one row of the table.
type Region struct {
	Code    string  // e.g. DE, WORLD, aws:eu-central-1
	Name    string  // in words
	GPerKWh float64 // yearly average, gCO2e per kWh
	Year    int     // the year the figure describes
	Source  string  // the publication it comes from
}

var (
	once    sync.Once
	table   map[string]Region
	codes   []string
	loadErr error
)

func load() {
	table = map[string]Region{}
	r := csv.NewReader(strings.NewReader(regionsCSV))
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		loadErr = fmt.Errorf("internal/carbon/regions.csv: %w", err)
		return
	}
	for i, row := range rows {
		if i == 0 {
			continue // header
		}
		if len(row) != 5 {
			loadErr = fmt.Errorf("internal/carbon/regions.csv: data row %d: want 5 fields, got %d", i, len(row))
			return
		}
		g, err := strconv.ParseFloat(row[2], 64)
		if err != nil || g < 0 {
			loadErr = fmt.Errorf("internal/carbon/regions.csv: data row %d (%s): g_per_kwh %q is not a number ≥ 0", i, row[0], row[2])
			return
		}
		y, err := strconv.Atoi(row[3])
		if err != nil {
			loadErr = fmt.Errorf("internal/carbon/regions.csv: data row %d (%s): year %q: %v", i, row[0], row[3], err)
			return
		}
		key := strings.ToLower(row[0])
		if _, dup := table[key]; dup {
			loadErr = fmt.Errorf("internal/carbon/regions.csv: data row %d: code %s appears twice", i, row[0])
			return
		}
		table[key] = Region{Code: row[0], Name: row[1], GPerKWh: g, Year: y, Source: row[4]}
		codes = append(codes, row[0])
	}
	sort.Strings(codes)
}

// Lookup finds a region by its code, ignoring case.
func Lookup(code string) (Region, error) {
	once.Do(load)
	if loadErr != nil {
		return Region{}, loadErr
	}
	if r, ok := table[strings.ToLower(strings.TrimSpace(code))]; ok {
		return r, nil
	}
	return Region{}, fmt.Errorf("unknown region %q: known regions are %s (or give --carbon-intensity G_PER_KWH)", code, strings.Join(codes, ", "))
}

// Regions returns every region of the table, sorted by code.
func Regions() ([]Region, error) {
	once.Do(load)
	if loadErr != nil {
		return nil, loadErr
	}
	out := make([]Region, 0, len(codes))
	for _, c := range codes {
		out = append(out, table[strings.ToLower(c)])
	}
	return out, nil
}
