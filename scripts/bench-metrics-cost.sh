#!/usr/bin/env bash
# What recording metrics costs: two spoold processes from the same build, one with metrics on (the
# default) and one with `metrics.enabled: false`, both with their HTTP listener, measured in the same
# run by `spool bench consume` (produce, then consume), alternating between them ROUNDS times.
# Prints each run's records/s and the medians with their ratio.
#   scripts/bench-metrics-cost.sh .build/release [ROUNDS] [extra spool bench options…]
set -euo pipefail
BIN=${1:?usage: bench-metrics-cost.sh BIN_DIR [ROUNDS] [spool bench options]}
ROUNDS=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() {  # name port metrics-enabled
  printf 'metrics.enabled: %s\nhttp.listen: 127.0.0.1:0\n' "$3" > "$WORK/$1.yaml"
  "$BIN/spoold" --config "$WORK/$1.yaml" --data-dir "$WORK/$1" --listen "tcp://127.0.0.1:$2" 2>"$WORK/$1.log" &
}
start on 7391 true
start off 7392 false
sleep 2

for round in $(seq 1 "$ROUNDS"); do
  for name in on off; do
    port=$([ $name = on ] && echo 7391 || echo 7392)
    "$BIN/spool" bench consume --broker "tcp://127.0.0.1:$port" --runs 1 --csv "$@" 2>/dev/null \
      | python3 -c 'import csv, sys
for row in csv.DictReader(sys.stdin):
    if row["section"] in ("produce", "consume"): print(sys.argv[1], sys.argv[2], row["section"], row["records_per_second"])' $name "$round" \
      | tee -a "$WORK/results"
  done
done

echo
echo "medians of $ROUNDS runs (records/s): metrics on, off, on/off"
for section in produce consume; do
  on=$(awk -v s=$section '$1=="on" && $3==s {print $4}' "$WORK/results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  off=$(awk -v s=$section '$1=="off" && $3==s {print $4}' "$WORK/results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  awk -v s=$section -v on="$on" -v off="$off" 'BEGIN { printf "%-8s %10d %10d   %.3f\n", s, on, off, on/off }'
done
