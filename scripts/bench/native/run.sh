#!/usr/bin/env bash
# The native engine against PyTorch eager (Debian's python3-torch) on the
# same checkpoints, threads and token ids: see main.go. Debian's torch uses the
# system's libblas.so.3 (the reference BLAS unless another is installed); when
# OpenBLAS is there (libopenblas0-pthread) torch is timed with it as well.
# OPENBLAS_DIR names another directory holding OpenBLAS's libblas.so.3, e.g.
# one unpacked with `apt-get download libopenblas0-pthread && dpkg -x ...`;
# REFBLAS_DIR names the reference BLAS's directory.
#
#   scripts/bench/native/run.sh [-min-time 1s] [-threads 1,2] [-batches 1,8]
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir=${OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-pthread}
ref=${REFBLAS_DIR:-/usr/lib/x86_64-linux-gnu/blas}
args=()
[ -e "$dir/libblas.so.3" ] && args=(-openblas "$dir")
# Where both are installed Debian's default is OpenBLAS: pin the plain torch
# column to the reference BLAS so the two columns differ.
[ -e "$ref/libblas.so.3" ] && args+=(-refblas "$ref")
exec go run ./scripts/bench/native "${args[@]}" "$@"
