# The two set-up commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
export CGO_CFLAGS := -Wno-deprecated-declarations
GO ?= go
BIN := bin
TOOLS := llem-expand llem-exec llem-sample llem-aggregate llem-report llem-serve

.PHONY: build demo test test-setup vet fmt clean

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(TOOLS))

# The main job: the pipeline on the quickstart study with the native backend.
demo: build
	mkdir -p results
	set -o pipefail; $(BIN)/llem-expand examples/quickstart.yaml | $(BIN)/llem-exec --out results \
	  | $(BIN)/llem-aggregate | tee results/energy.ndjson | $(BIN)/llem-report
	$(BIN)/llem-report -o results/report.html results/energy.ndjson
	@echo "demo: HTML report in results/report.html"

# Every test: installs what the tests need (Debian packages, services), then runs them.
test: test-setup
	gofmt -l $$(git ls-files '*.go') | (! grep .)
	$(GO) vet ./...
	$(GO) test -race -timeout 80m ./...

test-setup:
	bash scripts/test-setup.sh

clean:
	rm -rf $(BIN)
