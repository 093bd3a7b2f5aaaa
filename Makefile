# Spillway's build. `make test` is the whole suite, as CI runs it (.ci/run).
GO        ?= go
MODULES   := . bench e2e
# -race with 2 cores: keep the suite well under CI's 15-minute budget.
TESTFLAGS ?= -race -count=1 -timeout=10m

.PHONY: test deps vet fmt rules unit e2e bench-smoke bench bench-gateway bench-async fuzz demo build

# The unit tests run last, so that the run closes on their results.
test: deps vet rules bench-smoke e2e unit

# Tools the tests need beyond Go (promtool), installed by the project itself.
deps:
	@./scripts/test-deps.sh

vet: fmt
	@for m in $(MODULES); do echo "== go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done

# Every recipe writes to its own stdout and stderr only: opening /dev/stderr
# or /dev/tty would truncate (or miss) a file `make test > out.txt 2>&1`
# writes to.
fmt:
	@echo "== gofmt -l ."
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "$$out"; echo "gofmt: files above need formatting"; exit 1; fi

# The Prometheus rules of deploy/prometheus: promtool's syntax and lint
# check, then the unit tests that show every alert firing and quiet
# (docs/alerting.md).
rules: deps
	promtool check rules deploy/prometheus/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

unit:
	$(GO) test $(TESTFLAGS) ./...

# Fault injection through an in-process toxiproxy and the dashboard in
# Chromium: a module of its own, so that chromedp stays out of the library's
# go.mod.
e2e:
	cd e2e && $(GO) test $(TESTFLAGS) ./...

# Every benchmark runs once, so a broken benchmark fails CI without timing
# anything, and the bench module's tests run: the overload simulation holds
# the adaptive limit's defaults to issue 16's targets in simulated time, the
# hedging simulation its p99 and extra load.
bench-smoke:
	cd bench && $(GO) test -count=1 -bench=. -benchtime=1x ./...

# The measured run behind docs/benchmarks.md (not part of CI; about 5 minutes).
# Summarise with: go run golang.org/x/perf/cmd/benchstat@latest bench/bench.txt
bench:
	cd bench && $(GO) test -run=^$$ -bench=. -benchmem -count=6 -timeout=60m ./... | tee bench.txt

# The gateway against the upstream alone, httputil.ReverseProxy, nginx,
# HAProxy and Caddy under wrk (not part of CI; about 3 minutes per round).
ROUNDS ?= 3
BENCH_BIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/spillway-bench/bin
bench-gateway:
	@BENCH_BIN=$(BENCH_BIN) ./scripts/bench-deps.sh caddy
	cd bench && $(GO) run ./gwbench -rounds $(ROUNDS) -duration 10s -caddy $(BENCH_BIN)/caddy

# An async route: accepted jobs/s (202) and p99 with the embedded store, 256 B
# and 64 KiB bodies, default sync and sync: always; then the delivery rate to a
# healthy upstream (not part of CI; about 2 minutes).
bench-async:
	@./scripts/bench-deps.sh
	cd bench && $(GO) run ./gwbench -scenario async -duration 10s

# Each package's FuzzConfig for FUZZTIME; CI runs their seed corpora as tests.
FUZZTIME ?= 30s
FUZZPKGS := breaker retry timeout bulkhead fallback
# Other fuzz targets, as package:Target.
FUZZTARGETS := gateway:FuzzRawRequest
fuzz:
	@for p in $(FUZZPKGS); do $(GO) test ./$$p -run=^$$ -fuzz=FuzzConfig -fuzztime=$(FUZZTIME) || exit 1; done
	@for t in $(FUZZTARGETS); do $(GO) test ./$${t%%:*} -run=^$$ -fuzz=^$${t#*:}$$ -fuzztime=$(FUZZTIME) || exit 1; done

demo:
	$(GO) run ./cmd/spillway demo

# The spillway binary, its version stamped from git (a tag, else the
# revision, "-dirty" with uncommitted changes): the go command records no
# VCS information in a git worktree or with -buildvcs=false.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o spillway ./cmd/spillway
