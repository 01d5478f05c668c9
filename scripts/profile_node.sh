#!/usr/bin/env bash
# Profile validator nodes under benchmark load with py-spy.
#
#   scripts/profile_node.sh [RATE] [SECONDS] [OUTDIR] [extra bench args...]
#
# Starts `python -m devnet.bench --rate RATE` on a fresh 4-validator devnet in
# OUTDIR/net, waits for the measured phase, then samples validator-0 (raw
# collapsed stacks -> OUTDIR/profile-validator-0.txt plus a top list in
# OUTDIR/top-validator-0.txt) and validator-1 (flame graph ->
# OUTDIR/profile-validator-1.svg) for SECONDS.  The bench stops its own nodes.
# Needs py-spy:  .venv/bin/pip install py-spy
set -euo pipefail
RATE=${1:-800}
SECONDS_=${2:-20}
OUT=${3:-/tmp/ledger-profile}
shift $(( $# < 3 ? $# : 3 ))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PY" ] || PY=$(command -v python3)
SPY="$(dirname "$PY")/py-spy"
[ -x "$SPY" ] || SPY=$(command -v py-spy || true)
if [ -z "$SPY" ]; then
    echo "py-spy not found: install it with  $PY -m pip install py-spy" >&2
    exit 2
fi
mkdir -p "$OUT"
rm -rf "$OUT/net"
cd "$ROOT"
"$PY" -m devnet.bench --rate "$RATE" --duration $((SECONDS_ + 10)) --warmup 5 --home "$OUT/net" \
    --json "$OUT/bench.json" --quiet "$@" > "$OUT/bench.out" 2>&1 &
BENCH=$!
trap 'wait $BENCH || true' EXIT
# wait for the nodes, then for the load to begin (the bench logs nothing with --quiet: watch heights move with txs)
for _ in $(seq 1 600); do
    [ -f "$OUT/net/validator-1/node.pid" ] && break
    sleep 0.5
done
PID0=$(cat "$OUT/net/validator-0/node.pid")
PID1=$(cat "$OUT/net/validator-1/node.pid")
for _ in $(seq 1 600); do
    grep -q "committed height=.* txs=[1-9]" "$OUT/net/validator-0/node.log" 2>/dev/null && break
    sleep 0.5
done
sleep 5  # past the warm-up
echo "profiling validator-0 (pid $PID0) and validator-1 (pid $PID1) for ${SECONDS_}s at ${RATE} tx/s"
"$SPY" record --pid "$PID0" --duration "$SECONDS_" --rate 200 --format raw --nonblocking \
    -o "$OUT/profile-validator-0.txt" > /dev/null 2>&1 &
SPY0=$!
"$SPY" record --pid "$PID1" --duration "$SECONDS_" --rate 200 --nonblocking \
    -o "$OUT/profile-validator-1.svg" > /dev/null 2>&1 || true
wait $SPY0 || true
"$PY" "$ROOT/scripts/profile_top.py" "$OUT/profile-validator-0.txt" > "$OUT/top-validator-0.txt"
wait $BENCH || true
trap - EXIT
echo "bench: $(grep -o '"committed_tps": [0-9.]*' "$OUT/bench.json" 2>/dev/null || echo 'no result')"
echo "top: $OUT/top-validator-0.txt  flame graph: $OUT/profile-validator-1.svg"
