#!/bin/bash
# accel-side-by-side.sh [ROUNDS] [SECONDS] [WORKLOADS...]
# storkit accel-perf against SPDK's accel_perf (software module, ../shared/peers/spdk/bin), back to
# back on core 0, 4 KiB operations, QD 64, one thread: SPDK's own recipe shape. The order alternates
# each round so a slow spell of a shared host hits both. Only the ratio storkit/SPDK of each pair is
# a figure (the host drifts 2-3x between hours). Run from anywhere after `npm run build:ts`; SPDK
# needs hugepages and a mounted hugetlbfs. Prints one line per pair and the median per workload.
set -u
ROUNDS=${1:-5} SECS=${2:-3}
shift 2 2>/dev/null || shift $#
WORKLOADS=${*:-copy crc32c fill compare dualcast}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
B="$ROOT/../shared/peers/spdk/bin"
S="node $ROOT/packages/cli/dist/src/main.js"
[ -x "$B/accel_perf" ] || { echo "missing $B/accel_perf (../shared/peers/spdk)"; exit 2; }
[ -f "$ROOT/packages/cli/dist/src/main.js" ] || { echo "storkit is not built: npm run build:ts"; exit 2; }
mountpoint -q /dev/hugepages || { echo "SPDK needs hugetlbfs: mount -t hugetlbfs nodev /dev/hugepages"; exit 2; }
total() { awk '/^Total/ { sub("/s", "", $2); print $2 }'; }
spdk() { "$B/accel_perf" -w "$1" -o 4096 -q 64 -t "$SECS" -m 0x1 2>&1 | total; }
ours() { $S accel-perf -w "$1" -o 4096 -q 64 -t "$SECS" -m 0x1 2>&1 | total; }
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), tree $(git -C "$ROOT" rev-parse --short HEAD), host load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS pairs of $SECS s, 4 KiB, QD 64, core 0"
for w in $WORKLOADS; do
  ratios=()
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then s=$(spdk "$w"); k=$(ours "$w"); else k=$(ours "$w"); s=$(spdk "$w"); fi
    if [ -n "$s" ] && [ -n "$k" ] && [ "$s" -gt 0 ]; then
      ratio=$(awk -v k="$k" -v s="$s" 'BEGIN { printf "%.3f", k / s }')
      ratios+=("$ratio")
      echo "  $w pair $r: SPDK $s ops/s, storkit $k ops/s, ratio $ratio"
    else
      echo "  $w pair $r: incomplete (SPDK '${s:-}', storkit '${k:-}')"
    fi
  done
  n=${#ratios[@]}
  if [ "$n" -gt 0 ]; then
    sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
    echo "$w: median storkit/SPDK $(echo "$sorted" | sed -n "$(((n + 1) / 2))p") over $n pairs (min $(echo "$sorted" | head -1), max $(echo "$sorted" | tail -1))"
  fi
done
