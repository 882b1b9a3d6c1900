#!/usr/bin/env bash
# Full-disk soak of the durability promise: mounts a small tmpfs (needs root), starts the real
# spoold on it (fsync: always), publishes from three producers and reads with a consumer group of
# two while the disk fills and frees every second or two, then kill -9s and restarts spoold and
# checks that every acknowledged record is stored once where its acknowledgement said, every
# failed record was told why, and none is lost. Prints the figures (acknowledged, failed, lost).
# Runs for SECONDS (default 300; CI runs 15 as part of `make test`).
# Usage: scripts/disk-fault-soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build --build-tests
SPOOL_DISK_SOAK_SECONDS="${1:-300}" swift test --skip-build --disable-xctest --filter theDiskFillingAndFreeingUnderLoadLosesNothing 2>&1 \
  | grep -E "disk-fault soak|✔|✘"
