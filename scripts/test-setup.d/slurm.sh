# A one-node Slurm cluster on this machine for internal/slurm's integration test
# (sourced by scripts/test-setup.sh). Debian's slurm-wlm and munge, configured
# on localhost: munge authentication, no cgroups, no accounting daemon. The
# recipe is in docs/slurm.md.
#
# Idempotent: a second run finds the packages, the key, the configuration and
# the three daemons in place and returns in well under a second. The daemons are
# left running for the tests (they are machine services, like Docker's engine).
# If the cluster cannot be brought up this says so LOUDLY; under CI=true that
# is a failure.
slurm_loud() {
  printf '%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  printf '!!! %s\n' "$@" >&2
  printf '%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}
# slurm_fail MSG...: loud; under CI=true stops the set-up, else the Slurm test skips.
slurm_fail() {
  slurm_loud "$@" "internal/slurm's cluster test will be SKIPPED (it FAILS under CI=true)." \
    "Logs: /var/log/slurm/slurmctld.log, /var/log/slurm/slurmd.log, /var/log/munge/munged.log"
  if [ "${CI:-}" = "true" ]; then
    say "CI=true: a Slurm cluster that does not come up is a failure"
    exit 1
  fi
}
# slurm_alive PIDFILE: the daemon whose pid the file holds is running.
slurm_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
slurm_idle() { sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

slurm_setup() {
  if [ "$(id -u)" != 0 ]; then
    slurm_fail "not root: cannot install or start a Slurm cluster here."
    return 0
  fi
  # A machine that already is a Slurm host (its own slurm.conf, not ours) is
  # left alone: the test uses that cluster if it answers.
  if [ -e /etc/slurm/slurm.conf ] && ! grep -q "^# Written by llem's scripts/test-setup.d/slurm.sh" /etc/slurm/slurm.conf; then
    if slurm_idle; then
      say "slurm: using this machine's own cluster ($(sinfo -V)); /etc/slurm/slurm.conf left as it is"
    else
      slurm_fail "/etc/slurm/slurm.conf is not llem's and its cluster does not answer (sinfo); left as it is."
    fi
    return 0
  fi
  apt_install slurm-wlm munge
  local host cpus mem conf
  host="$(hostname -s)"
  cpus="$(nproc)"
  # slurmd drains a node whose RealMemory exceeds what it finds; leave 5 %.
  mem="$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)"
  # slurmd and slurmctld must resolve the node's name.
  getent hosts "$host" >/dev/null || printf '127.0.0.1 %s\n' "$host" >>/etc/hosts

  # Munge: one random key, readable by munge only.
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || true
    # Polls (up to a minute: a busy machine starts daemons slowly).
    for _ in $(seq 1 240); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    slurm_fail "munge does not work here (munge -n | unmunge fails)."
    return 0
  fi

  install -d -m 0755 /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
  # No cgroup.conf on purpose: 22.05 has no cgroup/disabled plugin and slurmd
  # refuses to start with one; without the file it loads cgroup/v1 and runs.
  # proctrack/linuxproc + task/none need no cgroups. MinJobAge keeps finished
  # jobs visible to `scontrol show job` (there is no accounting to ask).
  conf="$(cat <<EOF
# Written by llem's scripts/test-setup.d/slurm.sh: a one-node test cluster.
ClusterName=llem
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=30
MinJobAge=600
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)"
  if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
    say "writing /etc/slurm/slurm.conf ($host, $cpus CPUs, $mem MB)"
    printf '%s\n' "$conf" >/etc/slurm/slurm.conf
    # A changed configuration needs the daemons restarted; stop the ones that
    # run (by the pid their own pid files hold).
    local pf
    for pf in /run/slurmd.pid /run/slurmctld.pid; do
      if slurm_alive "$pf"; then
        kill "$(cat "$pf")" 2>/dev/null || true
        for _ in $(seq 1 240); do slurm_alive "$pf" || break; sleep 0.25; done
      fi
    done
  fi
  if ! slurm_alive /run/slurmctld.pid; then
    say "starting slurmctld"
    /usr/sbin/slurmctld || true
  fi
  if ! slurm_alive /run/slurmd.pid; then
    say "starting slurmd"
    /usr/sbin/slurmd || true
  fi
  local i
  for i in $(seq 1 240); do
    slurm_idle && break
    # A node left down or drained by an earlier life of the cluster comes back.
    if [ "$i" = 8 ]; then scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true; fi
    sleep 0.5
  done
  if slurm_idle; then
    say "slurm: node $host $(sinfo -h -N -o '%T') ($(sinfo -V))"
  else
    slurm_fail "the one-node Slurm cluster did not come up: sinfo shows '$(sinfo -h -N -o '%T %E' 2>&1 | head -1)'."
  fi
}
slurm_setup
