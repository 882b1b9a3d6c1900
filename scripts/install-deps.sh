#!/usr/bin/env bash
# Installs what Spool needs to build and test on Debian: libzmq3-dev (ZeroMQ with CURVE),
# libsqlite3-dev (the saga kit and the samples, through GRDB), pkg-config, and python3-zmq (the
# Python conformance client that `make test` runs). With --browser, also what the console's
# browser test needs: chromium, chromium-driver and python3-selenium. Does nothing when they are
# there already.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists libzmq 2>/dev/null; then missing+=(libzmq3-dev); fi
if ! pkg-config --exists sqlite3 2>/dev/null; then missing+=(libsqlite3-dev); fi
if ! /usr/bin/python3 -c 'import zmq' >/dev/null 2>&1; then missing+=(python3-zmq); fi
if [ "${1:-}" = "--browser" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1 || missing+=(python3-selenium)
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "install-deps: the Swift toolchain (swift 6.x) is not on PATH; install it from swift.org first." >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]} with apt-get (needed to build Spool)" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "install-deps: need root (or sudo) to run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
