# The two set-up commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
export CGO_CFLAGS := -Wno-deprecated-declarations
GO ?= go
BIN := bin
TOOLS := llem-expand llem-exec llem-sample llem-aggregate llem-report llem-load llem-doctor

.PHONY: build demo test check test-setup fmt vet staticcheck clean

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
test: test-setup fmt vet staticcheck
	$(GO) test -race -timeout 80m ./...

# The fast loop for development: no services, no root. Tests that need
# Docker, Slurm, chromium or root (and those that build the tools) skip
# under -short.
check: fmt vet staticcheck
	$(GO) test -short ./...

test-setup:
	bash scripts/test-setup.sh

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Pinned in go.mod (tool honnef.co/go/tools/cmd/staticcheck).
staticcheck:
	$(GO) tool staticcheck ./...

clean:
	rm -rf $(BIN)
