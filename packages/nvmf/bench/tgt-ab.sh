#!/usr/bin/env bash
# Interleaved A/B of two built trees on the NVMe/TCP target: tgt-perf.sh of BASE, then of this tree,
# N times, swapping which goes first in every other pair, so that each pair shares the machine's
# speed of the moment (on a shared VM it drifts by tens of percent within minutes; only a pair's
# ratio means anything). Each tree runs its own tgt-perf.sh, target and nvme-perf.
# Usage: packages/nvmf/bench/tgt-ab.sh BASE_ROOT [PAIRS] [SECONDS] [WORKLOADS]
#   BASE_ROOT  another checkout, built (npm run build), e.g. a git worktree of the base commit
#   WORKLOADS  as tgt-perf.sh's, default "randread 32"; HOST_OPTS is passed through
# Prints one line per run: pair, tree, workload, IOPS, target CPU-s and CPU-s per million I/Os,
# then each workload's new/base ratios and their median.
set -euo pipefail
BASE=${1:?usage: tgt-ab.sh BASE_ROOT [PAIRS] [SECONDS] [WORKLOADS]}
N=${2:-6}
T=${3:-4}
export WORKLOADS=${4:-randread 32}
NEW=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for i in $(seq "$N"); do
  order="base new"
  [ $((i % 2)) = 0 ] && order="new base"
  for w in $order; do
    R=$NEW
    [ "$w" = base ] && R=$BASE
    # the base tree may predate WORKLOADS/HOST_OPTS: run this tree's script against its build
    ROOT_OVERRIDE=$R bash "$NEW/packages/nvmf/bench/tgt-perf.sh" "$T" | grep QD |
      awk -v w="$w" -v i="$i" '{ printf "%d %-4s %-9s %-6s %10.0f  %s\n", i, w, $1, $3, $6, substr($0, index($0, "|") + 2, 47) }' |
      tee -a "$OUT"
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(/\s+/));
const by = {};
for (const [pair, tree, wl, qd, iops] of rows) ((by[`${wl} QD ${qd}`] ??= {})[pair] ??= {})[tree] = +iops;
for (const [k, pairs] of Object.entries(by)) {
  const r = Object.values(pairs).filter((p) => p.base && p.new).map((p) => p.new / p.base).sort((a, b) => a - b);
  const med = r.length % 2 ? r[(r.length - 1) / 2] : (r[r.length / 2 - 1] + r[r.length / 2]) / 2;
  console.log(`${k}: new/base ${r.map((x) => x.toFixed(3)).join(" ")}, median ${med.toFixed(3)}`);
}' "$OUT"
