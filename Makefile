# Spool: the two commands of the README, and a few helpers.
#   make run   installs what is missing, builds, and starts spoold on the embedded defaults
#   make test  installs what is missing and runs every test (the broker's, the Python client's
#              conformance suite against a real spoold, the console in headless Chromium, then the samples')
#   make demo  runs the order saga: spoold and the five sample services, a mix of orders, a report
#              (MODE=orchestration runs it through the order service's orchestrator, MODE=supervised with the
#              supervisor, MODE=event-sourced with the order service event-sourced; default choreography)
SWIFT ?= swift
CONFIG ?= release
MODE ?= choreography
BIN := .build/$(CONFIG)

.PHONY: run test demo build deps clean

run: build
	@echo "spoold: data in ./spool-data, listening on tcp://127.0.0.1:7070 (Ctrl-C stops it)"
	@echo "CLI:    $(BIN)/spool --help"
	$(BIN)/spoold

build: deps
	$(SWIFT) build -c $(CONFIG) --product spoold
	$(SWIFT) build -c $(CONFIG) --product spool

test: deps
	@./scripts/install-deps.sh --browser
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-xctest  # every test uses Swift Testing
	./scripts/python-conformance.sh .build/debug/spoold .build/debug/spool  # a client written from docs/protocol.md alone
	./scripts/browser-test .build/debug  # the web console in headless Chromium against a real spoold
	cd samples && $(SWIFT) build --build-tests  # the samples' end-to-end test runs ../.build/debug/spoold
	cd samples && $(SWIFT) test --skip-build --disable-xctest

demo: deps
	$(SWIFT) build -c $(CONFIG) --product spoold
	cd samples && $(SWIFT) build -c $(CONFIG)
	cd samples && .build/$(CONFIG)/saga-demo --spoold ../$(BIN)/spoold --mode $(MODE)

deps:
	@./scripts/install-deps.sh

clean:
	rm -rf .build samples/.build
