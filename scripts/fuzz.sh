#!/usr/bin/env bash
# Fuzzes Spool's wire decoders and storage recovery with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET  wall time for each target (default 60)
# TARGET              frame-header, messages, record-batch, segment-recovery, offset-store, key-index
#                     (default: all of them, one after the other)
#
# Builds the package in Fuzz/ (its own Package.swift, so the fuzz targets never enter the normal
# build) in release with -sanitize=fuzzer and the address sanitizer, into .build-fuzz/. Each target
# runs on a copy of its committed corpus, Fuzz/Corpus/<target>/, in .build-fuzz/work/<target>/;
# the committed corpus is not changed unless FUZZ_MERGE=1. Prints per target the executions,
# executions per second, the corpus size at the end and the crashes. Exits 1 if any target
# crashed (or hung, or ran out of memory), naming the saved input: replay it with
#   SWIFT_BACKTRACE=enable=no .build-fuzz/release/spool-fuzz <target> <input>
#
# Environment:
#   FUZZ_MERGE=1          afterwards, add the inputs of up to 4 KiB that reach new coverage to
#                         Fuzz/Corpus/<target>/ (libFuzzer -merge=1); review what it adds
#   FUZZ_SANITIZE=none    build with libFuzzer alone (about 2.5 times faster on segment-recovery,
#                         but out-of-bounds reads of unsafe buffers go unseen); default: address
#   SPOOL_FUZZ_TMPDIR     where the storage targets write their files (default: a directory of the run
#                         under /dev/shm, a tmpfs, removed at the end)
#   FUZZ_ARGS             more libFuzzer options, e.g. "-jobs=2 -workers=2" or "-only_ascii=1"
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
all_targets=(frame-header messages record-batch segment-recovery offset-store key-index)

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (targets: ${all_targets[*]})" >&2
    exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    if [[ " ${all_targets[*]} " != *" $target "* ]]; then
        echo "fuzz.sh: unknown target '$target' (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

# Longest input per target: large enough for several batches, segments or offset-store entries.
max_len() {
    case $1 in
        frame-header) echo 64 ;;
        messages) echo 4096 ;;
        record-batch) echo 8192 ;;
        segment-recovery) echo 16384 ;;
        offset-store) echo 8192 ;;
    esac
}

scratch=$root/.build-fuzz
sanitize=(--sanitize=address)
[ "${FUZZ_SANITIZE:-address}" = none ] && sanitize=()
echo "fuzz.sh: building Fuzz/ with -sanitize=fuzzer ${sanitize[*]} into .build-fuzz"
(cd Fuzz && swift build -c release "${sanitize[@]}" -Xswiftc -sanitize=fuzzer --scratch-path "$scratch" 2>&1 |
    grep -Ev '^\[[0-9]+/[0-9]+\]|prohibited flag|Cannot export local symbol' || true)
binary=$scratch/release/spool-fuzz
[ -x "$binary" ] || { echo "fuzz.sh: build failed" >&2; exit 1; }

# The Swift backtracer would take the crash before libFuzzer can save the input.
export SWIFT_BACKTRACE=enable=no
# The storage targets' files go to a directory of this run, removed at the end (a crash leaves
# the input's files behind otherwise).
if [ -z "${SPOOL_FUZZ_TMPDIR:-}" ]; then
    base=/dev/shm
    [ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
    SPOOL_FUZZ_TMPDIR=$(mktemp -d "$base/spool-fuzz-run.XXXXXX")
    export SPOOL_FUZZ_TMPDIR
    trap 'rm -rf "$SPOOL_FUZZ_TMPDIR"' EXIT
fi

failed=()
report=()
for target in "${targets[@]}"; do
    work=$scratch/work/$target
    artifacts=$scratch/artifacts/$target
    log=$scratch/logs/$target.log
    rm -rf "$work" "$artifacts"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    cp Fuzz/Corpus/"$target"/* "$work"/
    echo "fuzz.sh: $target for ${seconds}s (log: ${log#"$root"/})"
    status=0
    # shellcheck disable=SC2086  # FUZZ_ARGS is a list of options
    "$binary" "$target" -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$work" >"$log" 2>&1 || status=$?

    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ -z "$executions" ]; then  # a crash ends the run before the final stats
        executions=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        per_second=$(grep -Eo 'exec/s: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
    fi
    corpus=$(find "$work" -type f | wc -l)
    crashes=$(find "$artifacts" -type f | wc -l)
    report+=("$(printf '%-18s %12s %10s %8s %8s' "$target" "${executions:-?}" "${per_second:-?}" "$corpus" "$crashes")")
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed+=("$target")
        echo "fuzz.sh: $target FAILED (exit $status); saved inputs:"
        find "$artifacts" -type f -printf '  %p\n'
        echo "fuzz.sh: from its log:"
        first=$(grep -n -m1 -E 'Fatal error|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error' "$log" | cut -d: -f1 || true)
        if [ -n "$first" ]; then sed -n "${first},$((first + 24))p" "$log"; else tail -20 "$log"; fi | sed 's/^/  | /'
        grep -E 'Test unit written|^Base64' "$log" | sed 's/^/  | /' || true
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$status" -eq 0 ]; then
        # Only inputs of up to 4 KiB are offered, so that the committed corpus stays small.
        small=$scratch/merge/$target
        rm -rf "$small" && mkdir -p "$small"
        find "$work" -type f -size -4097c -exec cp {} "$small"/ \;
        before=$(find Fuzz/Corpus/"$target" -type f | wc -l)
        "$binary" "$target" -merge=1 -max_len="$(max_len "$target")" Fuzz/Corpus/"$target" "$small" >"$log.merge" 2>&1
        after=$(find Fuzz/Corpus/"$target" -type f | wc -l)
        echo "fuzz.sh: merged $((after - before)) inputs into Fuzz/Corpus/$target ($(du -sh Fuzz/Corpus/"$target" | cut -f1))"
    fi
done

echo
printf '%-18s %12s %10s %8s %8s\n' target executions exec/s corpus crashes
printf '%s\n' "${report[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs under .build-fuzz/artifacts/)"
    exit 1
fi
