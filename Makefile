# Spillway's build. `make test` is the whole suite, as CI runs it (.ci/run).
GO        ?= go
MODULES   := . bench
# -race with 2 cores: keep the suite well under CI's 15-minute budget.
TESTFLAGS ?= -race -count=1 -timeout=10m

.PHONY: test vet unit bench-smoke bench fuzz tidy-check demo

test: vet unit bench-smoke

vet:
	@for m in $(MODULES); do echo "== go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }

unit:
	$(GO) test $(TESTFLAGS) ./...

# Every benchmark runs once, so a broken benchmark fails CI without timing anything.
bench-smoke:
	cd bench && $(GO) test -count=1 -run=^$$ -bench=. -benchtime=1x ./...

# The measured run behind docs/benchmarks.md (not part of CI).
bench:
	cd bench && $(GO) test -run=^$$ -bench=. -benchmem -count=6 -timeout=60m ./... | tee bench.txt

FUZZTIME ?= 30s
fuzz:
	$(GO) test ./breaker -run=^$$ -fuzz=FuzzConfig -fuzztime=$(FUZZTIME)
	$(GO) test ./retry -run=^$$ -fuzz=FuzzConfig -fuzztime=$(FUZZTIME)
	$(GO) test ./bulkhead -run=^$$ -fuzz=FuzzConfig -fuzztime=$(FUZZTIME)

demo:
	$(GO) run ./cmd/spillway demo
