-- The naive DuckDB query, kept beside the tuned one for comparison: what a
-- first attempt looks like, correct but slow. It keys everything on the
-- 40-byte device string, computes the segments with lead() OVER (PARTITION
-- BY device ORDER BY t) and then the running area with a second window of
-- the same spec (DuckDB sorts the whole table for each window operator),
-- materialises the result with every sample in a temp table, and sorts it a
-- third time as the right side of the ASOF join for the edges. At 10^8 rows
-- this exceeds an 8 GB memory_limit and spills to disk. tuned.sql does the
-- same integration without sorting the samples at all.

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
