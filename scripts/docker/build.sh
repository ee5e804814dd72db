#!/usr/bin/env bash
# Builds llem's own images (the backends whose upstream images lack something):
#   scripts/docker/build.sh native    llem/native:latest   (static worker and llem-serve FROM scratch; no registry needed)
#   scripts/docker/build.sh pytorch   llem/pytorch:2.5.1-cuda12.4 (needs the pytorch/pytorch base image)
# vllm and tensorrt use their upstream images as they are (see docs/docker.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-}"
case "$what" in
  native)
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/llem-native-worker" ./scripts/docker/native
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/llem-serve" ./cmd/llem-serve
    docker build -t "${IMAGE:-llem/native:latest}" -f scripts/docker/native.Dockerfile "$ctx"
    ;;
  pytorch)
    docker build -t "${IMAGE:-llem/pytorch:2.5.1-cuda12.4}" -f scripts/docker/pytorch.Dockerfile scripts/docker
    ;;
  *) echo "usage: $0 native|pytorch   (IMAGE=name:tag to rename)" >&2; exit 2 ;;
esac
