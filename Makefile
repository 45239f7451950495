# kommo-unisender — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Pinned tools live in their own module so they never move the operator's
# dependency versions; `go tool` builds and caches them on first use.
TOOL := go tool -modfile=hack/tools/go.mod
CONTROLLER_GEN := $(TOOL) controller-gen
GOLANGCI_LINT := $(TOOL) golangci-lint
HELM := $(TOOL) helm

BIN := bin/kommo-unisender
# Flags for the test run; override e.g. `make test GOTEST_FLAGS=-short`.
GOTEST_FLAGS ?= -race -timeout 9m
TEST_PKGS ?= ./...
# Paths that `make generate manifests` writes: they must be committed as generated.
GENERATED := api config/crd config/rbac charts/kommo-unisender/templates/crds charts/kommo-unisender/files/rbac

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC from the code markers, and copy them into the chart.
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
lint: ## Run golangci-lint (pinned).
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

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

.PHONY: test
test: check-generated vet lint ## Check, then run every test against real services.
	go run ./hack/testenv -- go test $(GOTEST_FLAGS) $(TEST_PKGS)

.PHONY: e2e
e2e: ## The end-to-end test alone: real processes, kills and restarts, latency figures (also part of make test).
	go run ./hack/testenv -- go test -count=1 -v -run TestEndToEnd ./test/e2e/

.PHONY: bench
bench: ## Benchmarks with figures: webhook ingestion (wrk and Go clients, binlog on) and worker throughput.
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	go run ./hack/testenv -- go test -run '^$$' -bench WebhookIngestWrk -benchtime 1x -v ./webhookserver/
	go run ./hack/testenv -- go test -run '^$$' -bench 'WebhookIngest$$' ./webhookserver/
	go run ./hack/testenv -- go test -run '^$$' -bench WorkerThroughput -benchtime=20000x ./internal/worker/

.PHONY: test-short
test-short: ## Unit tests only (service tests skip).
	go test -short ./...

FUZZTIME ?= 10m
.PHONY: fuzz
fuzz: ## Fuzz the Kommo webhook parser for $(FUZZTIME).
	go test -run='^$$' -fuzz=FuzzParseWebhook -fuzztime=$(FUZZTIME) ./internal/kommo/
