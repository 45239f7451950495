# kommo-unisender — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Pinned tools live in their own module (hack/tools/go.mod) so they never move
# the operator's dependency versions. hack/build-tools.sh builds them into a
# cache outside the repository, in a directory named by their go.sum.
TOOLS_DIR := $(shell bash hack/build-tools.sh --dir)
CONTROLLER_GEN := $(TOOLS_DIR)/controller-gen
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint
DEADCODE := $(TOOLS_DIR)/deadcode
HELM := $(TOOLS_DIR)/helm

BIN := bin/kommo-unisender
# Binaries the tests run, built from this checkout by `make test-binaries`.
TEST_BIN := $(CURDIR)/bin/test
# Flags for the test run; override e.g. `make test GOTEST_FLAGS=-short`.
# golangci-lint runs go vet's analyzers (govet), so go test runs none again.
GOTEST_FLAGS ?= -timeout 9m -vet=off -p 3
TEST_PKGS ?= ./...
# Packages tested without -race: no concurrency of their own for the detector
# to watch, and no dependency shared with the race-built packages (a package
# that imports the Kubernetes or MySQL libraries would compile them a second
# time without -race, which costs far more than the detector saves). Every
# other package, and the binaries the system tests run, are built with -race.
RACE_FREE_PKGS := ./hack/widgetzip/... ./internal/fixtures/... ./test/packaging/argohealth/...
# Where the tests find the tools: each test that needs one fails at once,
# naming `make test-tools`, when its variable is unset or the file missing.
TEST_TOOLS_ENV = KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" HELM=$(HELM) \
	KOMMO_UNISENDER_BIN=$(TEST_BIN)/kommo-unisender WIDGETZIP=$(TEST_BIN)/widgetzip
# Paths that `make generate manifests` writes: they must be committed as generated.
GENERATED := api config/crd config/rbac charts/kommo-unisender/templates/crds charts/kommo-unisender/files/rbac

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(TOOLS_DIR)/%:
	@bash hack/build-tools.sh $* >/dev/null

# One script run builds every missing tool in one `go build` (see the script).
.PHONY: tools
tools: ## Build the pinned tools (controller-gen, golangci-lint, helm, deadcode) into the cache.
	@bash hack/build-tools.sh >/dev/null

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the code markers, and copy them into the chart.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	bash hack/sync-chart-crds.sh

.PHONY: check-generated
check-generated: generate manifests ## Fail if generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files are out of date; run 'make generate manifests' and commit:"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; fi

.PHONY: fmt
fmt: ## gofmt the sources.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (pinned; its govet runs go vet's analyzers).
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

# golangci-lint's unused never reports an exported function; deadcode does:
# every function that neither a binary nor a test reaches (-test: the test
# binaries are entry points too). It prints and exits 0, so its output fails.
.PHONY: deadcode
deadcode: $(DEADCODE) ## Fail on functions that no binary and no test reaches (golang.org/x/tools/cmd/deadcode).
	@out=$$($(DEADCODE) -test ./...); if [ -n "$$out" ]; then \
		echo "dead code (reached by no binary and no test): delete it"; echo "$$out"; exit 1; fi

.PHONY: build
build: ## Build the binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN) .

.PHONY: widget
widget: ## Build the Kommo widget archive dist/widget.zip (same bytes for the same sources).
	go run ./hack/widgetzip -src widget -out dist/widget.zip

.PHONY: dev
dev: build ## Run the whole system locally with a sandbox tenant (Ctrl-C stops it).
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" $(BIN) dev $(DEV_FLAGS)

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl from source into the cache.
	@bash hack/envtest-assets.sh

.PHONY: packages
packages: ## Install the Debian packages the tests run (MariaDB, beanstalkd, Chromium) if missing.
	@bash hack/install-packages.sh

# The tests' binaries are built with -race, as the test binaries are: they
# share every compiled dependency with them (no second, plain build of the
# whole tree), and the system tests catch data races in the real processes.
.PHONY: test-binaries
test-binaries: ## Build the operator binary and widgetzip (with -race) from this checkout for the tests.
	go build -race -o $(TEST_BIN)/kommo-unisender .
	go build -race -o $(TEST_BIN)/widgetzip ./hack/widgetzip

widget/harness/node_modules/.package-lock.json: widget/harness/package-lock.json
	cd widget/harness && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

.PHONY: widget-harness
widget-harness: widget/harness/node_modules/.package-lock.json ## Install the widget test page's npm packages (npm ci).

.PHONY: test-tools
test-tools: packages tools envtest-assets test-binaries widget-harness ## Everything the tests run, built or installed before the first test starts.

# Each phase prints its wall time (hack/phase.sh); hack/cold-check.sh sums them.
# The pinned tools and the envtest binaries build side by side: each build
# leaves a core idle for long stretches (links, large single packages), and
# together they keep both busy; each prints its own time.
PHASE = @bash hack/phase.sh
SUBMAKE = $(MAKE) --no-print-directory

.PHONY: test
test: ## Check, then run every test against real services.
	$(PHASE) "apt packages" $(SUBMAKE) packages
	$(PHASE) "tools and envtest assets (side by side)" $(SUBMAKE) -j2 tools envtest-assets
	$(PHASE) "test binaries" $(SUBMAKE) test-binaries widget-harness
	$(PHASE) "generate, lint, dead code" $(SUBMAKE) check-generated lint deadcode
	$(PHASE) "tests" $(SUBMAKE) test-run
	$(PHASE) "alert rules and dashboard" $(SUBMAKE) test-promrules

.PHONY: test-run
test-run: ## Run the tests only (after `make test-tools`): TEST_PKGS, GOTEST_FLAGS.
	$(TEST_TOOLS_ENV) RACE_FREE="$(RACE_FREE_PKGS)" go run -race ./hack/testenv -- bash hack/go-test.sh $(GOTEST_FLAGS) -- $(TEST_PKGS)

.PHONY: test-promrules
test-promrules: ## The chart's alert rules and dashboard queries through Prometheus's parsers (test/promrules, a module of its own).
	cd test/promrules && HELM=$(HELM) go test -count=1 ./...

.PHONY: cold-check
cold-check: ## Clone HEAD and run .ci/run there with empty Go and tool caches, timing each phase.
	bash hack/cold-check.sh

.PHONY: e2e
e2e: packages envtest-assets test-binaries ## The end-to-end test alone: real processes, kills and restarts, latency figures (also part of make test).
	$(TEST_TOOLS_ENV) go run -race ./hack/testenv -- go test -race -count=1 -v -run TestEndToEnd ./test/e2e/

.PHONY: writeback-burst
writeback-burst: packages envtest-assets test-binaries ## Issue 17's load run: 1,000 unsubscribes written back to Kommo within its rate (about 4 minutes; make test runs 150).
	$(TEST_TOOLS_ENV) WRITEBACK_BURST=1000 go run -race ./hack/testenv -- go test -race -count=1 -v -timeout 15m -run TestWriteBackBurstStaysWithinKommoLimit ./test/writeback/

.PHONY: bench
bench: packages envtest-assets ## Benchmarks with figures: webhook ingestion (wrk and Go clients, binlog on) and worker throughput.
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	go run ./hack/testenv -- go test -run '^$$' -bench WebhookIngestWrk -benchtime 1x -v ./webhookserver/
	go run ./hack/testenv -- go test -run '^$$' -bench 'WebhookIngest$$' ./webhookserver/
	go run ./hack/testenv -- go test -run '^$$' -bench WorkerThroughput -benchtime=20000x ./internal/worker/
	go run ./hack/testenv -- go test -run '^$$' -bench WorkerBurst -benchtime=1x ./internal/worker/

# The scale benchmarks run a plain (not -race) build of the operator: the
# race detector multiplies memory and CPU, which are the figures measured;
# one package at a time (-p 1), so that no benchmark loads the machine of another.
BENCH_BIN := $(CURDIR)/bin/bench
.PHONY: bench-scale
bench-scale: packages envtest-assets ## Scale benchmarks with figures (test/scale/...): many tenants on one manager, large imports, workers, ingestion.
	go build -o $(BENCH_BIN)/kommo-unisender .
	$(TEST_TOOLS_ENV) KOMMO_UNISENDER_BIN=$(BENCH_BIN)/kommo-unisender \
		go run ./hack/testenv -- go test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 60m -v ./test/scale/...

.PHONY: test-short
test-short: ## Unit tests only (service tests skip).
	go test -short ./...

FUZZTIME ?= 10m
.PHONY: fuzz
fuzz: ## Fuzz the Kommo webhook parser for $(FUZZTIME).
	go test -run='^$$' -fuzz=FuzzParseWebhook -fuzztime=$(FUZZTIME) ./internal/kommo/
