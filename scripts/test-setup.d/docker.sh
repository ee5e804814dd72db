# Docker Engine for internal/runner/docker's tests (sourced by scripts/test-setup.sh).
# The tests talk to the engine through its API; no image is pulled (they build
# one FROM scratch). Debian's docker.io is enough. If the engine cannot be
# reached this says so LOUDLY; under CI=true that is a failure.
docker_loud() {
  printf '%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  printf '!!! %s\n' "$@" >&2
  printf '%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}
docker_ping() {
  # The engine's /_ping over its socket (or DOCKER_HOST), without needing the CLI.
  local host="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  case "$host" in
    unix://*) curl -fsS --max-time 5 --unix-socket "${host#unix://}" http://localhost/_ping >/dev/null 2>&1 ;;
    tcp://*)  curl -fsS --max-time 5 "http://${host#tcp://}/_ping" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}
if ! docker_ping; then
  if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ]; then
    apt_install docker.io curl
    if ! docker_ping; then
      say "starting the Docker engine"
      systemctl start docker >/dev/null 2>&1 || (nohup dockerd >/var/log/llem-dockerd.log 2>&1 &)
      for _ in $(seq 1 120); do docker_ping && break; sleep 1; done # a busy machine starts it slowly
    fi
  fi
fi
if docker_ping; then
  say "docker: engine reachable at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
else
  docker_loud "Docker engine NOT reachable at ${DOCKER_HOST:-unix:///var/run/docker.sock}." \
    "internal/runner/docker's engine tests will be SKIPPED." \
    "Fix: install docker.io (or Docker CE) and start it, or set DOCKER_HOST."
  if [ "${CI:-}" = "true" ]; then
    say "CI=true: a missing Docker engine is a failure"
    exit 1
  fi
fi
