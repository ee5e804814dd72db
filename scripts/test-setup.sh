#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine, by
# running every scripts/test-setup.d/*.sh in order (one file per concern).
# Each part is idempotent: a second run finds everything in place quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test-setup: %s\n' "$*" >&2; }
# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ -z "${LLEM_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; LLEM_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
for part in scripts/test-setup.d/*.sh; do
  [ -e "$part" ] || continue
  say "${part##*/}"
  # shellcheck source=/dev/null
  . "$part"
done
say "ready"
