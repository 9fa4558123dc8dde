#!/usr/bin/env bash
# Memory under a flood of flows that park nearly complete hellos (benches/flood.py): peak RSS
# of `shadowtap inspect` with the default memory budget and with the budget set so high that it
# never acts, and the flows given up. A benchmark, not a test: it asserts nothing.
#
# Usage: benches/flood.sh [FLOWS]      (default 60000; about 1.9 GB of capture through a pipe)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-60000}
OUT=bench-out
mkdir -p "$OUT"
cargo build --release --locked --quiet
BIN=target/release/shadowtap
for budget in ${BUDGETS:-256 1048576}; do
    cfg="$OUT/flood-$budget.toml"
    printf 'catalog = "%s/rules/services"\n[engine]\nmemory_budget_mib = %s\n' "$PWD" "$budget" > "$cfg"
    python3 benches/flood.py "$FLOWS" | /usr/bin/time -f "%e %M" -o "$OUT/flood.t" \
        "$BIN" inspect --config "$cfg" --stats - > /dev/null 2> "$OUT/flood.stderr" || true
    read -r secs kib < "$OUT/flood.t"
    gave=$(awk '$1 == "memory_budget_giveups" {print $2}' "$OUT/flood.stderr")
    printf 'flows %s  budget %7s MiB  peak RSS %5d MiB  %5.1f s  given up %s\n' \
        "$FLOWS" "$budget" $((kib / 1024)) "$secs" "${gave:-0}"
done
