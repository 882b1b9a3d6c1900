#!/usr/bin/env bash
# Runs the Python client's conformance suite (clients/python) against a fresh broker.
#
#   scripts/python-conformance.sh SPOOLD SPOOL
#
# Starts SPOOLD on a free loopback port with a temporary data directory, waits until it answers,
# runs clients/python/conformance.py with /usr/bin/python3 (which needs python3-zmq), stops the
# broker (SIGTERM, then SIGKILL after 10 s), removes the directory, and exits with the suite's
# status.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 SPOOLD SPOOL" >&2
    exit 64
fi
SPOOLD=$1
SPOOL=$2
PYTHON=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLIENT_DIR=$HERE/clients/python

for bin in "$SPOOLD" "$SPOOL"; do
    if [ ! -x "$bin" ]; then
        echo "python-conformance: $bin is not an executable file" >&2
        exit 1
    fi
done
if ! "$PYTHON" -c 'import zmq' 2>/dev/null; then
    echo "python-conformance: $PYTHON cannot import zmq; install python3-zmq (apt-get install -y python3-zmq)" >&2
    exit 1
fi

DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/spool-conformance.XXXXXX")
BROKER_PID=

stop_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "python-conformance: spoold did not stop on SIGTERM; killing it" >&2
            kill -KILL "$BROKER_PID" 2>/dev/null
        fi
        wait "$BROKER_PID" 2>/dev/null
    fi
    BROKER_PID=
}

cleanup() {
    stop_broker
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bind port 0 and take what the kernel gave (then release it).
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
ENDPOINT=tcp://127.0.0.1:$PORT

"$SPOOLD" --data-dir "$DATA_DIR/data" --listen "$ENDPOINT" --http-listen off >"$DATA_DIR/spoold.log" 2>&1 &
BROKER_PID=$!

# Wait until the broker answers a metadata request, with any reply (at most 30 s).
answered=0
for _ in $(seq 1 60); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        break
    fi
    if "$PYTHON" - "$CLIENT_DIR" "$ENDPOINT" <<'EOF' 2>/dev/null
import sys
sys.path.insert(0, sys.argv[1])
from spool_client import OP_METADATA, SpoolClient, metadata_body
with SpoolClient(sys.argv[2], timeout=0.5) as client:
    client.receive_raw(client.send(OP_METADATA, metadata_body([], False)))
EOF
    then
        answered=1
        break
    fi
    sleep 0.5
done
if [ "$answered" != 1 ]; then
    echo "python-conformance: spoold did not answer on $ENDPOINT; its log:" >&2
    cat "$DATA_DIR/spoold.log" >&2
    exit 1
fi

"$PYTHON" "$CLIENT_DIR/conformance.py" --broker "$ENDPOINT" --spool "$SPOOL"
status=$?
if [ "$status" != 0 ]; then
    echo "python-conformance: broker log in the failed run (last 40 lines):" >&2
    tail -n 40 "$DATA_DIR/spoold.log" >&2
fi
exit "$status"
