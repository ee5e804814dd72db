// Command duckbench integrates the benchmark's sample stream over its windows
// with DuckDB (duckdb-go, reading Parquet): the same trapezoid integral with
// linear interpolation at the window edges as llem-aggregate. -query picks
// the SQL: tuned.sql (the way a skilled DuckDB user would write it: streaming
// scans, no sort of the samples) or naive.sql (a first attempt: window
// functions partitioned by the device string, three sorts of the table),
// both embedded from the files beside this one. It writes CSV
// window,device,integral_j to -o.
//
// It is a separate Go module so that llem itself never downloads DuckDB.
package main

import (
	"database/sql"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2"
)

//go:embed tuned.sql
var tunedSQL string

//go:embed naive.sql
var naiveSQL string

func main() {
	samples := flag.String("samples", "samples.parquet", "Parquet sample stream")
	windows := flag.String("windows", "windows.csv", "windows CSV (start_ns,end_ns)")
	devices := flag.String("devices", "devices.csv", "devices CSV (dev,device): the names behind the dev key (tuned query)")
	out := flag.String("o", "duckdb.csv", "output CSV")
	query := flag.String("query", "tuned", "tuned or naive")
	threads := flag.Int("threads", 0, "DuckDB threads (0: its default, all cores)")
	memLimit := flag.String("memory", "", "DuckDB memory_limit, e.g. 8GB (default: DuckDB's, 80% of RAM); beyond it DuckDB spills to disk")
	flag.Parse()
	if err := run(*query, *samples, *windows, *devices, *out, *threads, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "duckbench:", err)
		os.Exit(1)
	}
}

func run(query, samples, windows, devices, out string, threads int, memLimit string) error {
	var text string
	switch query {
	case "tuned":
		text = tunedSQL
	case "naive":
		text = naiveSQL
	default:
		return fmt.Errorf("-query %q: want tuned or naive", query)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	// One connection: SET VARIABLE, temp tables and macros are per connection.
	db.SetMaxOpenConns(1)
	if threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads = %d", threads)); err != nil {
			return err
		}
	}
	if memLimit != "" {
		if _, err := db.Exec(fmt.Sprintf("SET memory_limit = '%s'", memLimit)); err != nil {
			return err
		}
	}
	segments := ""
	if strings.Contains(text, "{{segments}}") {
		if segments, err = perDevice(db, devices); err != nil {
			return err
		}
	}
	q := strings.NewReplacer("{{samples}}", samples, "{{windows}}", windows, "{{devices}}", devices,
		"{{out}}", out, "{{segments}}", segments).Replace(text)
	for _, stmt := range statements(q) {
		if _, err := db.Exec(stmt); err != nil {
			return fmt.Errorf("%w\nin: %s", err, stmt)
		}
	}
	return nil
}

// perDevice is seg_of(d) for every device d of the devices table, joined by
// UNION ALL: one order-preserving scan per device (a window function with
// an empty OVER cannot be partitioned).
func perDevice(db *sql.DB, devices string) (string, error) {
	rows, err := db.Query(fmt.Sprintf("SELECT dev FROM read_csv('%s', header = true, columns = {'dev': 'TINYINT', 'device': 'VARCHAR'}) ORDER BY dev", devices))
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var d int
		if err := rows.Scan(&d); err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("SELECT * FROM seg_of(%d)", d))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%s: no devices", devices)
	}
	return strings.Join(parts, " UNION ALL "), nil
}

// statements splits SQL text at semicolons that end a line, dropping
// comment lines.
func statements(text string) []string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	var out []string
	for _, s := range strings.Split(b.String(), ";\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
