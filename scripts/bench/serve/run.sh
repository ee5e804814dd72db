#!/usr/bin/env bash
# The llem-serve benchmarks of docs/serve.md ("Performance"): concurrent
# streams, served vs offline throughput, ITL, TTFT under long prefills.
# Prints the load average before and after: on a shared machine the
# figures move with it. Model: $LLEM_SERVE_BENCH_MODEL (default llem-small).
set -euo pipefail
cd "$(dirname "$0")/../../.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
go test -run '^$' -bench "${1:-Serve}" -benchtime 1x -timeout 60m ./internal/serve/
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
