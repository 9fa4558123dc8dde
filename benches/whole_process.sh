#!/usr/bin/env bash
# Whole-process benchmark on the reference workload of ../shared/bench (1.7 M packets, 1.55 GB).
#
# Runs side by side, in one go, pinned to one core, file in page cache:
#   1. the bare libpcap read loop (pcap_count.c from ../shared/bench)
#   2. `shadowtap inspect` writing JSON lines to a file
#   3. `ndpiReader -q -e 0` (Debian libndpi-bin), the peer
# and prints median wall times, the ratios the project targets (shadowtap ≤ 1.5× bare loop,
# ≥ 6× faster than ndpiReader, peak RSS ≤ 64 MiB) and the SNIs/JA4s found against the ground
# truth (14,829 TLS SNIs over TCP, 7,330 over QUIC, 24,338 DNS query names).
# Then the scaling table, not pinned: `inspect --stats --workers N` for N = 1 .. the cores
# (at least 2), its speed-up over one worker, whether the records are those of one worker, and
# `ndpiReader -n N` with the same threads (its -n may apply to live interfaces only: its help
# line is printed).
#
# Usage: benches/whole_process.sh [RUNS]     (default 5 runs each; the capture is generated once
# into bench-out/, ~60 s, 1.55 GB of disk). A benchmark, not a test: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
RUNS=${1:-5}
BENCH=${SHADOWTAP_BENCH_DIR:-../shared/bench}
OUT=bench-out
mkdir -p "$OUT"
ensure_packages libpcap-dev libndpi-bin time python3-pip gcc
CPU=${BENCH_CPU:-0}

if [ ! -s "$OUT/big.pcap" ]; then
    python3 -c 'import dpkt, cryptography' 2>/dev/null || pip install -q dpkt cryptography
    python3 "$BENCH/make_bench_pcap.py" --seed-pcap "$BENCH/seed-min.pcap" --out "$OUT/big.pcap" > "$OUT/mix.json"
fi
gcc -O2 -o "$OUT/pcap_count" "$BENCH/pcap_count.c" -lpcap
cargo build --release --locked --quiet
BIN=target/release/shadowtap
cat "$OUT/big.pcap" > /dev/null

# run NAME CMD... : RUNS timed runs; records wall seconds and peak RSS (KiB) per run
run() {
    local name=$1; shift
    : > "$OUT/$name.times"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M" -o "$OUT/$name.t1" taskset -c "$CPU" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || true
        cat "$OUT/$name.t1" >> "$OUT/$name.times"
    done
}
run pcap_count "$OUT/pcap_count" "$OUT/big.pcap"
run shadowtap "$BIN" inspect --stats --workers 1 "$OUT/big.pcap"
cp "$OUT/shadowtap.stdout" "$OUT/shadowtap.jsonl"
run ndpi ndpiReader -q -e 0 -i "$OUT/big.pcap"

python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def load(n):
    rows = [l.split() for l in open(f"{out}/{n}.times") if l.strip()]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024
base, base_rss = load("pcap_count")
st, st_rss = load("shadowtap")
nd, nd_rss = load("ndpi")
recs = [json.loads(l) for l in open(f"{out}/shadowtap.jsonl")]
tcp_sni = sum(1 for r in recs if r["sni"] and r["transport"] == "tcp")
quic_sni = sum(1 for r in recs if r["sni"] and r["transport"] == "udp")
ja4 = sum(1 for r in recs if r["ja4"])
dns_names = sum(len(r.get("dns_queries") or []) for r in recs)
print(f"{'reader':<28}{'median wall s':>14}{'peak RSS MiB':>14}")
for n, t, m in [("libpcap loop", base, base_rss), ("shadowtap inspect", st, st_rss), ("ndpiReader -q -e 0", nd, nd_rss)]:
    print(f"{n:<28}{t:>14.3f}{m:>14.1f}")
print(f"shadowtap / libpcap loop   {st / base:.2f}x   (target <= 1.5x)")
print(f"ndpiReader / shadowtap     {nd / st:.2f}x   (target >= 6x)")
print(f"shadowtap peak RSS         {st_rss:.1f} MiB (target <= 64 MiB)")
print(f"flows {len(recs)}  TLS SNIs over TCP {tcp_sni}/14829  QUIC SNIs {quic_sni}/7330  JA4s {ja4}  DNS query names {dns_names}/24338")
PY

# Scaling with --workers (not pinned: the reader and the shards each want a core).
CORES=$(nproc)
MAXW=$(( CORES < 2 ? 2 : CORES ))
: > "$OUT/scaling.txt"
for n in $(seq 1 "$MAXW"); do
    : > "$OUT/w$n.times"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M" -o "$OUT/w$n.t1" "$BIN" inspect --stats --workers "$n" "$OUT/big.pcap" > "$OUT/w$n.stdout" 2> /dev/null || true
        cat "$OUT/w$n.t1" >> "$OUT/w$n.times"
    done
    same=$(cmp -s "$OUT/w1.stdout" "$OUT/w$n.stdout" && echo yes || echo NO)
    echo "$n $same" >> "$OUT/scaling.txt"
    if command -v ndpiReader > /dev/null; then
        : > "$OUT/ndpi$n.times"
        for _ in $(seq "$RUNS"); do
            /usr/bin/time -f "%e %M" -o "$OUT/ndpi$n.t1" ndpiReader -q -e 0 -n "$n" -i "$OUT/big.pcap" > /dev/null 2>&1 || true
            cat "$OUT/ndpi$n.t1" >> "$OUT/ndpi$n.times"
        done
    fi
done
command -v ndpiReader > /dev/null && { ndpiReader -h 2>&1 | grep -E '^ *-n' || true; }
python3 - "$OUT" <<'PY'
import os, statistics, sys
out = sys.argv[1]
def med(n):
    p = f"{out}/{n}.times"
    if not os.path.exists(p):
        return None
    rows = [l.split() for l in open(p) if l.strip()]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024
rows = [l.split() for l in open(f"{out}/scaling.txt") if l.strip()]
one = med("w1")[0]
print(f"{'workers':>8}{'median wall s':>15}{'speed-up':>10}{'peak RSS MiB':>14}{'same records':>14}{'ndpiReader -n s':>17}")
for n, same in rows:
    t, rss = med(f"w{n}")
    nd = med(f"ndpi{n}")
    nd_s = f"{nd[0]:.3f}" if nd else "-"
    print(f"{n:>8}{t:>15.3f}{one / t:>9.2f}x{rss:>14.1f}{same:>14}{nd_s:>17}")
PY
