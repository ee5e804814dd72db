# llem/native: the native backend's worker, a static Go binary, FROM scratch,
# and llem-serve (the native backend's server, for serving runs: llem-exec runs
# `llem-serve …` as the container's command; PATH has /usr/local/bin).
# Build: scripts/docker/build.sh native   (builds the binary, then this image)
# llem-exec runs it with `runners: {native: docker}` when a study wants the
# native backend isolated in a container (it runs locally by default).
FROM scratch
COPY llem-native-worker /llem-native-worker
COPY llem-serve /usr/local/bin/llem-serve
ENTRYPOINT ["/llem-native-worker"]
