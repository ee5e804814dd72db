# The two set-up commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
export CGO_CFLAGS := -Wno-deprecated-declarations
GO ?= go
BIN := bin
TOOLS := llem-expand llem-exec llem-sample llem-aggregate llem-report llem-load llem-serve llem-doctor

.PHONY: build demo demo-serving test check test-setup fmt vet staticcheck clean

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

# The second demo: serving mode on examples/serving.yaml. llem-exec starts
# llem-serve for each of four Poisson request rates and drives it with
# traffic; the report shows the serving curves (J/token, TTFT, TPOT and
# goodput against the offered rate).
demo-serving:
	@echo "demo-serving: 1/2 building the tools into $(BIN)/"
	@$(MAKE) --no-print-directory build
	@echo "demo-serving: 2/2 running examples/serving.yaml: llem-serve at four request rates (about a minute: a 3 s idle baseline, then 4 runs of about 15 s)"
	@mkdir -p results-serving
	set -o pipefail; $(BIN)/llem-expand examples/serving.yaml | $(BIN)/llem-exec --out results-serving \
	  | $(BIN)/llem-aggregate | tee results-serving/energy.ndjson | $(BIN)/llem-report
	$(BIN)/llem-report -o results-serving/report.html results-serving/energy.ndjson
	@echo "demo-serving: HTML report in results-serving/report.html"

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

# Everything scripts/gpu-check.sh needs on a GPU machine that has neither Go nor a network (only
# the NVIDIA driver, python3 with PyTorch and transformers): the built tools (llem-exec and
# llem-sample with cgo, for NVML), the check scripts, the model maker and the worker sources, in
# one directory and one tarball. Copy it over, then: cd llem-gpu-bundle && bash scripts/gpu-check.sh
BUNDLE := dist/llem-gpu-bundle
.PHONY: gpu-bundle
gpu-bundle:
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)/bin $(BUNDLE)/scripts/docker $(BUNDLE)/internal/worker/python
	CGO_ENABLED=1 $(GO) build -trimpath -o $(BUNDLE)/bin/ ./cmd/llem-exec ./cmd/llem-sample
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUNDLE)/bin/ ./cmd/llem-expand ./cmd/llem-aggregate ./cmd/llem-report
	cp scripts/gpu-check.sh scripts/gpu-check-pipeline.sh $(BUNDLE)/scripts/
	cp scripts/docker/gpu-check-python.sh scripts/docker/make-tiny-model.py $(BUNDLE)/scripts/docker/
	cp -r internal/worker/python/src $(BUNDLE)/internal/worker/python/
	find $(BUNDLE) -name __pycache__ -prune -exec rm -rf {} +
	{ echo "llem GPU check bundle, built $$(date -u +%FT%TZ) from $$(git describe --always --dirty 2>/dev/null)"; \
	  echo "glibc needed by bin/llem-exec and bin/llem-sample: $$(objdump -T $(BUNDLE)/bin/llem-exec $(BUNDLE)/bin/llem-sample 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"; \
	  echo "run: bash scripts/gpu-check.sh --dry-run   (what it checks), then: bash scripts/gpu-check.sh"; } > $(BUNDLE)/MANIFEST
	cd $(BUNDLE) && find . -type f | sort >> MANIFEST
	tar -C dist -czf dist/llem-gpu-bundle.tar.gz llem-gpu-bundle
	@cat $(BUNDLE)/MANIFEST | head -3; du -sh dist/llem-gpu-bundle.tar.gz
