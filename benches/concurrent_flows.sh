#!/usr/bin/env bash
# Memory per concurrent flow (benches/concurrent_flows.py): peak RSS of `shadowtap inspect` over
# N open TCP connections (SYN, SYN-ACK, ACK; none closed, so all are in the table at the end),
# against a run over 10,000; the difference over the difference in flows is what a flow costs
# the whole process (table entry, flow state, allocator). A benchmark, not a test: it asserts
# nothing; the issue of throughput targets at most 256 bytes of table state per flow and at
# most 512 MiB in all for 1,000,000 flows.
#
# Usage: benches/concurrent_flows.sh [FLOWS]    (default 1000000; 210 MB of capture per million)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-1000000}
SMALL=10000
OUT=bench-out
mkdir -p "$OUT"
cargo build --release --locked --quiet
BIN=target/release/shadowtap
for n in "$SMALL" "$FLOWS"; do
    [ -s "$OUT/flows-$n.pcap" ] || python3 benches/concurrent_flows.py "$n" > "$OUT/flows-$n.pcap"
    /usr/bin/time -f "%e %M" -o "$OUT/flows-$n.t" "$BIN" inspect --stats --max-flows $((FLOWS + SMALL)) \
        "$OUT/flows-$n.pcap" > /dev/null 2> "$OUT/flows-$n.stderr"
done
python3 - "$OUT" "$SMALL" "$FLOWS" <<'PY'
import sys
out, small, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def run(n):
    secs, kib = open(f"{out}/flows-{n}.t").read().split()
    stats = dict(l.split()[:2] for l in open(f"{out}/flows-{n}.stderr") if len(l.split()) >= 2)
    return float(secs), int(kib), stats
s_secs, s_kib, _ = run(small)
b_secs, b_kib, stats = run(big)
per_flow = (b_kib - s_kib) * 1024 / (big - small)
print(f"flows {big:,}: peak RSS {b_kib / 1024:,.0f} MiB ({b_secs:.1f} s); {small:,} flows: {s_kib / 1024:,.0f} MiB")
print(f"per flow: {per_flow:,.0f} bytes of process memory (target: table state <= 256 B, total <= 512 MiB)")
for k in ("flows", "flow_table_evictions", "evictions"):
    if k in stats:
        print(f"  {k} {stats[k]}")
PY
