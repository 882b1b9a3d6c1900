#!/usr/bin/env bash
# Kill -9 soak of the durability promise: starts the real spoold (fsync: always), publishes
# from four clients, kill -9s the broker at a random moment, restarts it, and checks that
# every acknowledged record is stored exactly once at the offset its acknowledgement gave,
# with dense offsets. Repeats for N rounds (default 30; CI runs the default as part of
# `make test`). Usage: scripts/crash-test.sh [ROUNDS]; SPOOL_TEST_SEED=<seed> replays a run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build --build-tests
SPOOL_CRASH_ROUNDS="${1:-${SPOOL_CRASH_ROUNDS:-30}}" swift test --skip-build --filter everyAcknowledgedRecordSurvivesKillNine
