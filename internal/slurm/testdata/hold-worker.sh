#!/usr/bin/env bash
# The native worker for internal/slurm's cluster test, with holds. The k-th
# run that array task i starts (counting over all the task's attempts) first
# writes $LLEM_TEST_GATE/started-i-k; if $LLEM_TEST_GATE/hold-i-k exists it
# then waits, ignoring SIGTERM, until llem-exec kills it after its --grace.
# So the test knows, without timing anything, that a run is in progress when
# it cancels, requeues or warns the task; and the run ends only when
# llem-exec ends it (a scancel signals every process of the task, the worker
# too: a worker that died of that SIGTERM before llem-exec had handled its
# own could be taken for a crash).
set -eu
g="$LLEM_TEST_GATE" i="$SLURM_ARRAY_TASK_ID"
k=1
while [ -e "$g/started-$i-$k" ]; do k=$((k + 1)); done
: >"$g/started-$i-$k"
if [ -e "$g/hold-$i-$k" ]; then
  trap '' TERM
  exec sleep infinity
fi
exec "$LLEM_BIN/llem-exec" __worker native
