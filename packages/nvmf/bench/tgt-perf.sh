#!/usr/bin/env bash
# NVMe/TCP through the real app: `storkit tgt -m 0x1` (one reactor, core 0) exporting a 64 MiB
# malloc bdev, driven by `storkit nvme-perf -c 0x2` (core 1). Prints each workload's nvme-perf
# summary plus the target's CPU-seconds (utime + stime of the whole tgt process, /proc/PID/stat)
# and CPU-seconds per million I/Os. Usage: packages/nvmf/bench/tgt-perf.sh [SECONDS]
# SLICE_US=N runs the same target (the app's Target class, what storkit tgt runs) with the
# reactor loop's slice set to N us instead of the default 500 (the CLI has no flag for it): a
# reactor serves its sockets only between slices, so the slice bounds how often it reads them.
# WORKLOADS="randread 32;randwrite 128" picks workloads (workload and QD, ';'-separated; default
# randread QD 32, randread QD 128, randwrite QD 128).
# ROOT_OVERRIDE=DIR runs another built tree (tgt-ab.sh uses it for its base).
# HOST_OPTS='--hdgst --ddgst' adds options to every nvme-perf run (digests, say).
# HOST_SOCK=node|native is passed to nvme-perf as --sock (its I/O qpairs' sockets; default native).
# Each line also shows nvme-perf's own CPU-seconds (host CPU) for the workload, and the reactor's
# busy share over the workload (framework_get_reactors busy ticks over the wall time, SPDK's
# measure of core load: iterations in which a poller did work; time yielded to libuv or asleep
# counts as not busy): a busy-polling target burns its whole core either way, so IOPS / busy share
# is what one fully loaded target core would serve when the host, not the target, is the limit.
# The window includes nvme-perf's start-up and connect (~0.3-0.5 s), so the share reads low by that
# much on short runs (and the per-busy-core figure high): a hint, not a measurement to quote.
# bench:targets 5
set -euo pipefail
T=${1:-10}
ROOT=${ROOT_OVERRIDE:-$(cd "$(dirname "$0")/../../.." && pwd)}
CLI="node $ROOT/packages/cli/dist/src/main.js"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/storkit-tgt-perf.XXXXXX")
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
NQN=nqn.2016-06.io.storkit:cnode1
cat >"$DIR/cfg.json" <<JSON
{"subsystems":[
 {"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":131072,"block_size":512}}]},
 {"subsystem":"nvmf","config":[
  {"method":"nvmf_create_transport","params":{"trtype":"TCP","max_queue_depth":128}},
  {"method":"nvmf_create_subsystem","params":{"nqn":"$NQN","allow_any_host":true}},
  {"method":"nvmf_subsystem_add_ns","params":{"nqn":"$NQN","namespace":{"nsid":1,"bdev_name":"Malloc0"}}},
  {"method":"nvmf_subsystem_add_listener","params":{"nqn":"$NQN","listen_address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"$PORT"}}}]}]}
JSON
if [ -n "${SLICE_US:-}" ]; then
  cat >"$DIR/tgt.mjs" <<JS
import { readFileSync } from 'node:fs';
import { Logger, Target } from '$ROOT/packages/app/dist/src/index.js';
const t = new Target({ mask: '0x1', rpcSocket: '$DIR/rpc.sock', log: new Logger('error'),
  config: JSON.parse(readFileSync('$DIR/cfg.json', 'utf8')), loop: { sliceUs: $SLICE_US } });
await t.start();
console.log('storkit tgt: running');
await t.done;
JS
  node "$DIR/tgt.mjs" >"$DIR/tgt.log" 2>&1 &
else
  $CLI tgt -m 0x1 -r "$DIR/rpc.sock" --json "$DIR/cfg.json" --no-stats >"$DIR/tgt.log" 2>&1 &
fi
TGT=$!
cleanup() { kill "$TGT" 2>/dev/null || true; wait "$TGT" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q 'storkit tgt: running' "$DIR/tgt.log" && break; sleep 0.1; done
grep -q 'storkit tgt: running' "$DIR/tgt.log" || { cat "$DIR/tgt.log"; exit 1; }
TRID="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$PORT subnqn:$NQN"
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$TGT/stat"; }
# busy ticks of the target's one reactor, its tick rate, and the wall clock (s)
ticks() { $CLI rpc -s "$DIR/rpc.sock" framework_get_reactors | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.reactors[0].busy+" "+j.tick_rate+" "+Date.now()/1e3)})'; }
echo "date $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), ${T}s per workload, slice ${SLICE_US:-500 (default)} us, host sockets ${HOST_SOCK:-native}${HOST_OPTS:+, host options $HOST_OPTS}"
IFS=';' read -r -a LOADS <<<"${WORKLOADS:-randread 32;randread 128;randwrite 128}"
for w in "${LOADS[@]}"; do
  set -- $w
  t0=$(ticks)
  before=$(cpu)
  out=$($CLI nvme-perf -r "$TRID" -q "$2" -o 4096 -w "$1" -t "$T" -c 0x2 --sock "${HOST_SOCK:-native}" ${HOST_OPTS:-})
  after=$(cpu)
  t1=$(ticks)
  ios=$(sed -n 's/.*I\/Os: \([0-9]*\) .*/\1/p' <<<"$out")
  total=$(grep -E '^Total' <<<"$out" || true)
  host=$(sed -n 's/.*host CPU \([0-9.]*\) s.*/\1/p' <<<"$out")
  awk -v w="$1 QD $2" -v c0="$before" -v c1="$after" -v hz="$HZ" -v n="$ios" -v tot="$total" -v h="$host" \
    -v t="$t0 $t1" 'BEGIN { s = (c1 - c0) / hz; split(t, k, " "); busy = (k[4] - k[1]) / k[2] / (k[6] - k[3])
      printf "%-16s %s | target CPU %.2f s, %.2f CPU-s per million I/Os | host CPU %.2f s | target busy %.1f%%, %.0f k IOPS per busy core\n", w, tot, s, s / (n / 1e6), h, 100 * busy, n / '"$T"' / busy / 1e3 }'
done
