#!/usr/bin/env bash
# Device check for a lent GPU machine (one H100/H200): installs the CUDA extra unless JAX already sees the GPU, runs
# the tests marked `device` (bitwise invariance across chunk sizes, statistical z/KS tests) and every benchmark at
# GPU size, each under a timeout within one time budget, then prints one table: benchmark, size, figure, target, status.
#
#   benchmarks/device_check.sh              # on the GPU machine: at most BUDGET_S seconds (default 440) in all
#   benchmarks/device_check.sh --cpu-smoke  # (or DEVICE_CHECK_SMOKE=1) tiny sizes on the CPU, no install: the plumbing
#
# Every step's full output and the table (summary.md) go to ${OUT:-results/device_check}. ARGS_<benchmark> replaces a
# benchmark's arguments, e.g. ARGS_bench_sweep='--points 1e9 --skip-numpy'; SKIP_STEPS='pytest_device bench_zarr' leaves
# steps out (a rerun within the device time left). Targets (H100 class) are judged on the GPU only. Exit status 1 if
# any step failed, timed out, was skipped for want of time or missed its target; 2 if no GPU JAX could be installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SMOKE=${DEVICE_CHECK_SMOKE:-0}
case ${1:-} in
    --cpu-smoke) SMOKE=1 ;;
    "") ;;
    *) echo "usage: $0 [--cpu-smoke]" >&2; exit 2 ;;
esac
BUDGET_S=${BUDGET_S:-440}
RESULTS=${OUT:-results/device_check}
mkdir -p "$RESULTS"
if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

pick() { if ((SMOKE)); then echo "$2"; else echo "$1"; fi; }  # pick GPU_VALUE SMOKE_VALUE

# --- the machine, and JAX on its GPU ----------------------------------------------------------------------------
{
    echo "device_check $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(date -u +%FT%TZ)$(pick '' ' (cpu smoke)')"
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || true; else echo "(no nvidia-smi)"; fi
} | tee "$RESULTS/header.log"

gpu_ready() { "$PY" -c 'import sys, jax, qkdjax; sys.exit(jax.default_backend() != "gpu")' >/dev/null 2>&1; }
if ((SMOKE)); then
    export JAX_PLATFORMS=cpu
elif gpu_ready; then
    echo "JAX already sees the GPU ($PY): nothing to install"
else
    echo "installing '.[test,cuda]' into .venv (at most 240 s; log: $RESULTS/install.log)"
    if ! { [[ -x .venv/bin/python ]] || python3 -m venv --system-site-packages .venv; } >"$RESULTS/install.log" 2>&1 ||
        ! timeout -k 10 240 .venv/bin/python -m pip install --retries 1 --timeout 20 -e '.[test,cuda]' >>"$RESULTS/install.log" 2>&1 ||
        ! PY=.venv/bin/python gpu_ready; then
        echo "device_check: FAIL: no GPU JAX: creating .venv or 'pip install -e .[test,cuda]' failed or timed out," \
            "or JAX still has no GPU backend (package registry unreachable?); see $RESULTS/install.log" | tee "$RESULTS/summary.md" >&2
        exit 2
    fi
    PY=.venv/bin/python
fi
"$PY" -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())' 2>&1 |
    tee -a "$RESULTS/header.log" || { echo "device_check: FAIL: $PY cannot import jax" >&2; exit 2; }

# --- steps, figures, table ----------------------------------------------------------------------------------------
ROWS=()  # benchmark|size|figure|target|status
RC=0
LOG=/dev/null
step() {  # step NAME CAP_S COMMAND...: COMMAND under min(CAP_S, budget left); all its output to $RESULTS/NAME.log
    local name=$1 cap=$2 left=$((BUDGET_S - SECONDS - 15)) start=$SECONDS
    shift 2
    LOG=$RESULTS/$name.log
    if [[ " ${SKIP_STEPS:-} " == *" $name "* ]]; then
        RC=asked
        echo "== $name: left out (SKIP_STEPS)" | tee "$LOG"
        return
    elif ((left < 30)); then
        RC=skip
        echo "skipped: the ${BUDGET_S} s budget is spent" | tee "$LOG"
        return
    fi
    local limit=$((cap < left ? cap : left))
    echo "== $name (limit ${limit} s): $*"
    RC=0
    timeout -k 10 "$limit" "$@" >"$LOG" 2>&1 || RC=$?
    echo "   exit $RC after $((SECONDS - start)) s; last lines:"
    tail -n 5 "$LOG" | sed 's/^/   | /'
}

verdict() {  # verdict VALUE [OP TARGET]: the last step's status, given its figure (empty: none was found)
    case $RC in
        0) ;;
        124 | 137) echo TIMEOUT && return ;;
        skip) echo "SKIP (time)" && return ;;
        asked) echo "not run (SKIP_STEPS)" && return ;;
        *) echo "FAIL (exit $RC)" && return ;;
    esac
    if [[ -z $1 ]]; then
        echo "FAIL (no figure)"
    elif [[ -z ${3:-} ]] || ((SMOKE)); then
        echo OK
    elif awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { exit !(op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0) }'; then
        echo PASS
    else
        echo MISS
    fi
}

row() {  # row BENCHMARK SIZE VALUE UNIT [OP TARGET]
    local figure=- target=-
    [[ -n $3 ]] && figure="$3 $4"
    [[ -n ${5:-} ]] && target="$5 $6 $4"
    ROWS+=("$1|$2|$figure|$target|$(verdict "$3" "${5:-}" "${6:-}")")
}

best() {  # best FIELD REGEX: the largest number in whitespace field FIELD of the log's lines matching REGEX
    awk -v f="$1" -v re="$2" '$0 ~ re && $f + 0 > m { m = $f + 0 } END { if (m > 0) printf "%.3g", m }' "$LOG"
}

near() {  # near REGEX WORD OFFSET: the largest number OFFSET (1: after, -1: before) fields from WORD on lines matching REGEX
    awk -v re="$1" -v w="$2" -v d="$3" '$0 ~ re { for (i = 1; i <= NF; i++) if ($i == w && $(i + d) + 0 > m) m = $(i + d) + 0 }
        END { if (m > 0) printf "%.3g", m }' "$LOG"
}

scale() { [[ -n $1 ]] && awk -v v="$1" -v k="$2" 'BEGIN { printf "%.3g", v * k }' || true; }  # scale VALUE FACTOR

bench() {  # bench NAME CAP_S DEFAULT_ARGS: run benchmarks/NAME.py with ${ARGS_NAME:-DEFAULT_ARGS}; sets SIZE
    local var=ARGS_$1 args
    args=${!var-$3}
    SIZE=$(sed -E 's/--(skip-numpy|repeat [0-9]+)//g; s/--//g; s/ +/ /g; s/^ | $//g; s/^$/(defaults)/' <<<"$args")
    local -a argv
    read -r -a argv <<<"$args"
    step "$1" "$2" "$PY" "benchmarks/$1.py" "${argv[@]}"
}

tests() {  # tests NAME CAP_S PYTEST_ARGS...: one pytest run and its row (counts from -v lines: they survive a timeout)
    local name=$1
    step "$1" "$2" "$PY" -m pytest -v -p no:cacheprovider "${@:3}"
    local counts
    counts=$(awk '$1 ~ /^tests\// && $2 ~ /^(PASSED|FAILED|ERROR|SKIPPED)$/ { n[tolower($2)]++ }
        END { for (s in n) printf "%s%d %s", (k++ ? ", " : ""), n[s], s }' "$LOG")
    row "$name" "${*:3}" "$counts" ""
}

# Tests first (the issue's order), then the benchmarks with targets, then the rest; the budget skips what is left.
if ((SMOKE)); then tests pytest_device 150 -m device tests/test_sweep.py; else tests pytest_device 150 -m device; fi

bench bench_sweep 90 "$(pick '--points 1e8 2e8 --chunk-size 4194304 --repeat 2 --skip-numpy' \
    '--points 2e4 --decoy infinite --chunk-size 8192 --repeat 1 --skip-numpy')"
row bench_sweep "$SIZE" "$(best 4 '^ *[0-9.]+(e[+-][0-9]+)? ')" "engine pt/s" ">=" 1e9

bench bench_finite_key 75 "$(pick '--points 1000000 --trials 100 --repeat 2 --skip-numpy' '--points 100 --trials 4 --repeat 1 --skip-numpy')"
row "bench_finite_key estimator" "$SIZE" "$(near 'estimator:' qkdjax 1)" "estimates/s"
row "bench_finite_key Monte Carlo" "$SIZE" "$(near 'Monte Carlo:' qkdjax 1)" "blocks/s (12 cells + estimator)"

bench bench_optimize 75 "$(pick '--points 100000 --scipy-points 8' '--points 30 --scipy-points 3')"
row bench_optimize "$SIZE" "$(scale "$(near '^qkdjax:' 'ms/point;' -1)" 1000)" "us/point" "<=" 20

# the block Monte Carlo target: "= X sampled cells/s"
bench bench_samplers 60 "$(pick '--blocks 2000000 --samples 20000000 --repeat 3' '--blocks 2000 --samples 20000 --repeat 1')"
row "bench_samplers block counts" "$SIZE" "$(near 'sampled cells/s' = 1)" "cells/s" ">=" 1e9

bench bench_events 75 "$(pick '--pulses 2e9 --numpy-pulses 1e6 --chunk-size 16777216 --repeat 1' \
    '--pulses 1e5 --numpy-pulses 1e5 --impls threefry2x32 --chunk-size 65536 --repeat 1')"
row bench_events "$SIZE" "$(near '^pulses mode' 'pulses/s' -1)" "pulses/s"

bench bench_satellite 60 "$(pick '--passes 64 --samples 4000 --repeat 2' '--passes 2 --samples 8 --repeat 1')"
row bench_satellite "$SIZE" "$(near '^fading core' qkdjax 1)" "samples/s"

bench bench_availability 45 "$(pick '--trials 4000 --points 4 --steps 8760 --repeat 2' '--trials 8 --points 2 --steps 200 --repeat 1')"
row bench_availability "$SIZE" "$(near 'link-years: qkdjax' qkdjax 1)" "link-years/s"

bench bench_network 60 "$(pick '--trials 10000 --steps 8766 --sizes 4 16 64' '--trials 2 --steps 100 --sizes 2 4')"
row bench_network "$SIZE" "$(best 7 '^ *(chain|ladder) +[0-9]')" "link-years/s"

export XLA_PYTHON_CLIENT_PREALLOCATE=false  # these two start a JAX process per measurement under a parent holding JAX
bench bench_zarr 75 "$(pick '--points 1e8 --chunk-size 4194304' '--points 1e4 --chunk-size 4096')"
row bench_zarr "$SIZE" "$(awk '$2 == "memory" { m = $4 } $2 == "zarr" { z = $4 } END { if (m || z) print "memory " m ", zarr " z }' "$LOG")" "pt/s"

bench bench_scaling 75 "$(pick '--points 1e7 1e8 --trials 1e4 1e5 --steps 1e4 1e5' '--points 1e3 1e4 --trials 4 8 --steps 50 100')"
row bench_scaling "$SIZE" "$(awk -F': run time ~ size\\^' 'NF == 2 { split($2, e, " "); printf "%s%s %s", (k++ ? ", " : ""), $1, e[1] }' "$LOG")" \
    "(run-time exponent)"
unset XLA_PYTHON_CLIENT_PREALLOCATE

bench bench_compile 90 "$(pick '--sweeps lim_2014 satellite_pass' '--sweeps default')"
row bench_compile "$SIZE" "$(awk '$1 == "all" { printf "cold %s (compile %s), warm %s (compile %s)", $2, $3, $4, $5 }' "$LOG")" "s to cube"

# One GPU cannot split a chunk: device-count invariance runs on 4 forced host devices (the test compares with the
# in-process backend, which must then be the CPU too).
if ((SMOKE)); then
    ROWS+=("pytest_device_count|tests/test_devices.py|-|-|not run (cpu smoke)")
else
    JAX_PLATFORMS=cpu tests pytest_device_count 60 tests/test_devices.py
fi

# --- the table --------------------------------------------------------------------------------------------------
echo
printf '%s\n' "benchmark|size|figure|target|status" "${ROWS[@]}" | awk -F'|' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > width[i]) width[i] = length($i) } }
    END { for (r = 1; r <= NR; r++) { for (i = 1; i <= 5; i++) printf("%-" width[i] + 2 "s", cell[r, i]); print "" } }' |
    tee "$RESULTS/table.txt"
{
    echo '```'
    cat "$RESULTS/header.log"
    echo '```'
    echo
    echo "| benchmark | size | figure | target | status |"
    echo "| --- | --- | --- | --- | --- |"
    for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
} >"$RESULTS/summary.md"
bad=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' '$5 !~ /^(OK|PASS|not run)/' | wc -l)
echo "$bad of ${#ROWS[@]} rows not OK; logs and summary.md in $RESULTS ($SECONDS s)"
((bad == 0)) || exit 1
