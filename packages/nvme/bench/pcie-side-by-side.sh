#!/bin/bash
# pcie-side-by-side.sh [ROUNDS] [SECONDS] [QD]
# storkit nvme-perf against SPDK's spdk_nvme_perf on the same QEMU NVMe controller (vfio-pci,
# behind QEMU's emulated Intel IOMMU), back to back in one TCG guest (packages/cli/test/guest/
# pcie-guest.sh), 4 KiB randread. The order alternates each round so a slow spell of the host hits
# both. Under TCG the absolute IOPS mean nothing (QEMU emulates the controller and the CPU on the
# host): only the ratio storkit/SPDK of each pair is a figure. Run from the repository root after
# `npm run build:ts`; prints one line per pair and the median ratio.
set -u
if [ "${1:-}" = "--in-guest" ]; then
  shift
  ROUNDS=$1 SECS=$2 QD=$3
  S="node packages/cli/dist/src/main.js"
  B=../shared/peers/spdk/bin
  A=${NVME_BDFS%% *}
  $S setup -a "$A" --hugemem 600 > /dev/null || { echo "GUEST-RESULT: FAIL setup"; exit 1; }
  TRID="trtype:PCIe traddr:$A"
  spdk() { $B/spdk_nvme_perf -r "$TRID" -q "$QD" -o 4096 -w randread -t "$SECS" 2>&1 | awk '/^Total/ {print $3}'; }
  # --warmup: under TCG on one vCPU V8's optimizing compiler needs seconds before the loop is hot.
  ours() { $S nvme-perf -r "$TRID" -q "$QD" -o 4096 -w randread -t "$SECS" --warmup 6 2>&1 | awk '/^Total/ {print $3}'; }
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then s=$(spdk); k=$(ours); else k=$(ours); s=$(spdk); fi
    echo "GUEST-RESULT: pair $r spdk=$s storkit=$k load=$(cut -d' ' -f1 /proc/loadavg)"
  done
  exit 0
fi
ROUNDS=${1:-3} SECS=${2:-5} QD=${3:-32}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT" || exit 1
OUT=$(mktemp -d /tmp/storkit-pcie-pair.XXXXXX); trap 'rm -rf "$OUT"' EXIT
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), tree $(git rev-parse --short HEAD), host load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS pairs of $SECS s, QD $QD"
TIMEOUT=$((600 + ROUNDS * (2 * SECS + 40))) bash packages/cli/test/guest/pcie-guest.sh "$OUT" \
  bash packages/nvme/bench/pcie-side-by-side.sh --in-guest "$ROUNDS" "$SECS" "$QD" 2>&1 |
  tr -d '\r' | sed -n 's/.*GUEST-RESULT: //p' | tee "$OUT/pairs.txt"
# Each pair's ratio, then the median (sort: the system's awk may lack asort).
awk '/^pair/ { split($3, s, "="); split($4, k, "="); if (s[2] > 0 && k[2] > 0)
       printf "  pair %s: SPDK %.0f IOPS, storkit %.0f IOPS, ratio %.3f\n", $2, s[2], k[2], k[2] / s[2] }' "$OUT/pairs.txt"
awk '/^pair/ { split($3, s, "="); split($4, k, "="); if (s[2] > 0 && k[2] > 0) printf "%.3f\n", k[2] / s[2] }' \
  "$OUT/pairs.txt" | sort -n > "$OUT/ratios.txt"
n=$(wc -l < "$OUT/ratios.txt")
[ "$n" -gt 0 ] || { echo "no complete pair"; exit 1; }
echo "median ratio storkit/SPDK over $n pairs: $(sed -n "$(((n + 1) / 2))p" "$OUT/ratios.txt") (min $(head -1 "$OUT/ratios.txt"), max $(tail -1 "$OUT/ratios.txt"))"
