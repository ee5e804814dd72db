# llem/native: the native backend's worker, a static Go binary, FROM scratch.
# Build: scripts/docker/build.sh native   (builds the binary, then this image)
# llem-exec runs it with `runners: {native: docker}` when a study wants the
# native backend isolated in a container (it runs locally by default).
FROM scratch
COPY llem-native-worker /llem-native-worker
ENTRYPOINT ["/llem-native-worker"]
