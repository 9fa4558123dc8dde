#!/usr/bin/env bash
# Memory per concurrent flow (benches/concurrent_flows.py): peak RSS of `shadowtap inspect` over
# N open TCP connections (SYN, SYN-ACK, ACK; none closed, so all are in the table at the end),
# against a run over 10,000; the difference over the difference in flows is what a flow costs
# the whole process (table entry, flow state, allocator, and the records `inspect` holds to
# order them by first packet), for flows still being identified (`handshake`) and for named
# flows whose probe state is gone (`named`). A benchmark, not a test: it asserts
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
for mode in handshake named; do
    for n in "$SMALL" "$FLOWS"; do
        f="$OUT/flows-$mode-$n"
        [ -s "$f.pcap" ] || python3 benches/concurrent_flows.py "$n" "$mode" > "$f.pcap"
        /usr/bin/time -f "%e %M" -o "$f.t" "$BIN" inspect --stats --max-flows $((FLOWS + SMALL)) "$f.pcap" > /dev/null 2> "$f.stderr"
    done
    python3 - "$OUT" "$SMALL" "$FLOWS" "$mode" <<'PY'
import sys
out, small, big, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def run(n):
    secs, kib = open(f"{out}/flows-{mode}-{n}.t").read().split()
    return float(secs), int(kib)
s_secs, s_kib = run(small)
b_secs, b_kib = run(big)
per_flow = (b_kib - s_kib) * 1024 / (big - small)
print(f"{mode:9}  {big:,} open flows: peak RSS {b_kib / 1024:,.0f} MiB ({b_secs:.1f} s); {small:,}: {s_kib / 1024:,.0f} MiB; "
      f"{per_flow:,.0f} bytes per flow (process, records held for ordering included)")
PY
done
