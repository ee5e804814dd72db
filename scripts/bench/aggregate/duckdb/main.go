// Command duckbench integrates the benchmark's sample stream over its windows
// with DuckDB (duckdb-go, reading Parquet): the same trapezoid integral with
// linear interpolation at the window edges as llem-aggregate, written as SQL
// the way a DuckDB user would (a running sum for the cumulative integral, an
// ASOF join to find each edge's sample interval). It writes CSV
// window,device,integral_j to -o.
//
// It is a separate Go module so that llem itself never downloads DuckDB.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2"
)

const query = `
CREATE TEMP TABLE w AS
  SELECT (row_number() OVER ()) - 1 AS win, start_ns, end_ns
  FROM read_csv('{{windows}}', header = true, columns = {'start_ns': 'BIGINT', 'end_ns': 'BIGINT'});
CREATE TEMP TABLE edges AS SELECT DISTINCT q FROM (SELECT start_ns AS q FROM w UNION ALL SELECT end_ns FROM w);
CREATE TEMP TABLE c AS
  WITH s AS (
    SELECT device, t, power_w AS p0,
           lead(t) OVER (PARTITION BY device ORDER BY t) AS t1,
           lead(power_w) OVER (PARTITION BY device ORDER BY t) AS p1
    FROM read_parquet('{{samples}}') WHERE power_w IS NOT NULL)
  SELECT device, t, p0, t1, p1,
         coalesce(sum((p0 + p1) / 2 * (t1 - t) / 1e9) OVER (PARTITION BY device ORDER BY t
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS cum
  FROM s;
CREATE TEMP TABLE ev AS
  SELECT x.q, x.device,
         c.cum + (x.q - c.t) / 1e9 * (c.p0 + (c.p0 + (c.p1 - c.p0) * (x.q - c.t) / (c.t1 - c.t))) / 2 AS cq
  FROM (SELECT e.q, d.device FROM edges e CROSS JOIN (SELECT DISTINCT device FROM c) d) x
  ASOF JOIN c ON x.device = c.device AND x.q >= c.t;
COPY (
  SELECT w.win AS window, a.device, b.cq - a.cq AS integral_j
  FROM w JOIN ev a ON a.q = w.start_ns JOIN ev b ON b.q = w.end_ns AND b.device = a.device
  ORDER BY w.win, a.device
) TO '{{out}}' (HEADER, DELIMITER ',');
`

func main() {
	samples := flag.String("samples", "samples.parquet", "Parquet sample stream")
	windows := flag.String("windows", "windows.csv", "windows CSV (start_ns,end_ns)")
	out := flag.String("o", "duckdb.csv", "output CSV")
	threads := flag.Int("threads", 0, "DuckDB threads (0: its default, all cores)")
	memLimit := flag.String("memory", "", "DuckDB memory_limit, e.g. 8GB (default: DuckDB's, 80% of RAM); beyond it DuckDB spills to disk")
	flag.Parse()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		fail(err)
	}
	defer db.Close()
	if *threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads = %d", *threads)); err != nil {
			fail(err)
		}
	}
	if *memLimit != "" {
		if _, err := db.Exec(fmt.Sprintf("SET memory_limit = '%s'", *memLimit)); err != nil {
			fail(err)
		}
	}
	q := strings.NewReplacer("{{samples}}", *samples, "{{windows}}", *windows, "{{out}}", *out).Replace(query)
	for _, stmt := range strings.Split(q, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			fail(fmt.Errorf("%w\nin: %s", err, strings.TrimSpace(stmt)))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "duckbench:", err)
	os.Exit(1)
}
