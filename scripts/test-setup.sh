#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine.
# Idempotent: a second run finds everything in place and returns quickly.
set -euo pipefail
say() { printf 'test-setup: %s\n' "$*" >&2; }

# Debian packages the tests use (each test says loudly when its tool is missing).
pkgs=()
if [ ${#pkgs[@]} -gt 0 ]; then
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
say "ready"
