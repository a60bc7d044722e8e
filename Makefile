# strata: build, test and demo entry points. `make help` lists them.

# Use the go.dev tarball's Go when no go is on PATH.
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED ?= 0

GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN         := bin/strata
TAGS        := root peer
FUZZTIME    ?= 20s
TESTTIMEOUT ?= 45m
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
# Go sources checked by gofmt: the ones `go build ./...` sees (no .cache, no testdata).
GOFILES      = $(shell find . \( -path ./.git -o -path ./.cache -o -path ./bin -o -name testdata \) -prune -o -name '*.go' -print)

.PHONY: all build deps man test test-short lint fuzz bench demo e2e e2e-short clean help

all: build

help:
	@echo 'make demo        scripts/deps, then scripts/demo: compose, image, provisioned boot, SSH, a layered package, agent update through a static delta under the fleet lock, a system extension, a signed OCI image through a registry, automatic rollback, a rebase onto the registry in QEMU (8m48s idle, 14-22 min on 2 busy cores)'
	@echo 'make test        scripts/deps, lint, then unit + root + peer tests (tags: $(TAGS))'
	@echo 'make lint        gofmt, go vet, staticcheck, go mod tidy -diff'
	@echo 'make build       build $(BIN) (static, CGO_ENABLED=0)'
	@echo 'make deps        scripts/deps: install the missing Debian packages and staticcheck'
	@echo 'make test-short  unit tests only (go test ./...)'
	@echo 'make fuzz        run every Fuzz* target for FUZZTIME (default $(FUZZTIME))'
	@echo 'make bench       strata against ostree (tools/bench), provision against ignition (BenchmarkApply), update services (tools/fleetbench), OCI push/pull against skopeo (BenchmarkOCIVsSkopeo), sysext build against mkfs.erofs and mksquashfs, a layered upgrade against a plain one'
	@echo 'make e2e         end-to-end boot test in QEMU (internal/e2e, ~14 min; E2ERUN selects steps)'
	@echo 'make e2e-short   its first steps: compose, image, boot, upgrade (~5 min; CI runs it)'
	@echo 'make man         man pages of every command into man/ (strata man DIR)'
	@echo 'make clean       remove bin/ and .cache/'

# The version is the nearest tag (or "devel"), the commit the checked-out one; strata version
# prints both.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDTAGS   := grpcnotrace
LDFLAGS     := -s -w -X github.com/strata-os/strata/internal/cli.version=$(VERSION) -X github.com/strata-os/strata/internal/cli.commit=$(COMMIT)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(BUILDTAGS)" -ldflags="$(LDFLAGS)" -o $(BIN) ./cmd/strata

# Man pages from the command tree, one per command, into man/.
man: build
	$(BIN) man man

# scripts/deps installs what is missing (apt packages, staticcheck) and is quiet when all is there.
deps:
	@./scripts/deps

lint:
	@unformatted=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	@if [ ! -x $(STATICCHECK) ]; then echo "$(STATICCHECK) not found: run scripts/deps"; exit 1; fi
	$(STATICCHECK) -tags '$(TAGS)' ./...
	$(GO) mod tidy -diff

# Lint failures do not hide test results: the tests run anyway and the target fails at the end.
test: deps
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	echo "$(GO) test -tags '$(TAGS)' -count=1 -timeout $(TESTTIMEOUT) ./..."; \
	$(GO) test -tags '$(TAGS)' -count=1 -timeout $(TESTTIMEOUT) ./... || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see lint or test output above)"; fi; \
	exit $$status

test-short:
	$(GO) test ./...

# One `go test -fuzz` per target: Go fuzzes a single target per invocation.
fuzz:
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

bench: build
	$(GO) run ./tools/bench
	$(GO) run ./tools/fleetbench
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench BenchmarkApply -benchtime 5x ./internal/provision/
	$(GO) test -tags peer -run '^$$' -bench BenchmarkDeltaVsOstree -benchtime 1x -timeout 60m ./internal/pull/
	$(GO) test -tags peer -run '^$$' -bench BenchmarkOCIVsSkopeo -benchtime 1x -timeout 60m ./internal/oci/
	$(GO) test -tags peer -run '^$$' -bench BenchmarkBuildVsTools -benchtime 1x ./internal/sysext/
	$(GO) test -tags 'root peer' -run 'TestLayeredUpgradeVsPlain' -v -timeout 30m ./internal/cli/

demo: deps build
	./scripts/demo

# The end-to-end test (internal/e2e): compose, image, boot, upgrade, fallback, power cuts, in
# QEMU, one VM at a time. E2ERUN picks a prefix of its steps; e2e-short (the CI-sized variant) stops
# after the upgrade to v2.
E2ERUN ?= TestE2E
e2e:
	$(GO) test -tags '$(TAGS) e2e' -count=1 -timeout 60m -v -run '$(E2ERUN)' ./internal/e2e/

e2e-short:
	$(MAKE) --no-print-directory e2e E2ERUN='TestE2E/(compose-v1|image|boot-v1|upgrade-v2)$$$$'

clean:
	rm -rf bin .cache man
