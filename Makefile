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
# It says what it is doing: the first build compiles every dependency (see
# the README for how long that takes) and prints nothing until it is done.
demo:
	@echo "demo: 1/2 building the tools into $(BIN)/ (go build; the first build compiles every dependency and takes minutes, later ones seconds)"
	@$(MAKE) --no-print-directory build
	@echo "demo: 2/2 running examples/quickstart.yaml: llem-expand | llem-exec | llem-aggregate | llem-report (about 15 s: a 5 s idle baseline, then 4 runs)"
	@mkdir -p results
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
