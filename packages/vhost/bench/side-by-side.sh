#!/usr/bin/env bash
# vhost-user-blk side by side, one session: `storkit bdevperf -m 0x2` (core 1) through storkit's
# virtio-user initiator (bdev_virtio_attach_controller, one queue of 128) against, in turn,
# (1) `storkit tgt -m 0x1` (one reactor, core 0) serving a 64 MiB malloc bdev as a vhost-blk
# controller and (2) qemu-storage-daemon (confined to core 0) exporting a 64 MiB file on tmpfs as
# vhost-user-blk. 4 KiB randread and randwrite at QD 128; prints bdevperf's IOPS and average
# latency plus the target process's CPU-seconds (utime + stime from /proc/PID/stat).
# Usage: packages/vhost/bench/side-by-side.sh [SECONDS] [storkit tgt options, e.g. --slice-us 20]
# (needs qemu-system-x86 / qemu-utils for qemu-storage-daemon). PROFILE=DIR also writes a V8 CPU
# profile of the storkit tgt run to DIR (node --cpu-prof, main thread and reactor worker).
# bench:targets 10
set -euo pipefail
SECS=${1:-10}
shift || true
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CLI="$ROOT/packages/cli/dist/src/main.js"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/storkit-vhost-sbs.XXXXXX")
HZ=$(getconf CLK_TCK)
SPID=; QPID=; IMG=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
  [ -n "$IMG" ] && rm -f "$IMG"
  rm -rf "$DIR"
}
trap cleanup EXIT

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
perf() { # PID SOCKET WORKLOAD
  local c0 c1 out
  cat > "$DIR/perf.json" <<JSON
{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_virtio_attach_controller",
 "params":{"name":"VirtioBlk0","trtype":"user","traddr":"$2","dev_type":"blk","vq_count":1,"vq_size":128}}]}]}
JSON
  c0=$(cpu "$1")
  out=$(node "$CLI" bdevperf --json "$DIR/perf.json" -q 128 -o 4096 -w "$3" -t "$SECS" -m 0x2)
  c1=$(cpu "$1")
  grep -E '^Total' <<<"$out" | awk -v w="$3" -v c0="$c0" -v c1="$c1" -v hz="$HZ" -v s="$SECS" \
    '{ cs = (c1 - c0) / hz; printf "  %-9s QD 128: %9.0f IOPS, avg %7.1f us | target %5.2f CPU-s (%.2f cores), %7.0f IOPS per target CPU-second\n", w, $3, $7, cs, cs / s, $3 * s / (cs > 0 ? cs : 1) }'
}

echo "date $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, ${SECS}s per workload"

# (1) storkit tgt: one reactor on core 0, a 64 MiB malloc bdev (4 KiB blocks) as vhost.0.
cat > "$DIR/storkit.json" <<JSON
{"subsystems":[
 {"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":16384,"block_size":4096}}]},
 {"subsystem":"vhost_blk","config":[{"method":"vhost_create_blk_controller","params":{"ctrlr":"vhost.0","dev_name":"Malloc0","cpumask":"0x1"}}]}]}
JSON
PROF=()
if [ -n "${PROFILE:-}" ]; then mkdir -p "$PROFILE"; PROF=(--cpu-prof --cpu-prof-dir "$PROFILE"); fi
node "${PROF[@]}" "$CLI" tgt --no-stats -m 0x1 -r "$DIR/rpc.sock" --vhost-dir "$DIR" \
  --json "$DIR/storkit.json" "$@" > "$DIR/storkit.log" 2>&1 &
SPID=$!
for _ in $(seq 150); do grep -q 'storkit tgt: running' "$DIR/storkit.log" && break; sleep 0.1; done
grep -q 'storkit tgt: running' "$DIR/storkit.log" || { cat "$DIR/storkit.log"; exit 1; }
echo "(1) storkit tgt -m 0x1 $* (malloc 64 MiB, vhost-blk vhost.0), bdevperf -m 0x2 over VirtioBlk0:"
for w in randread randwrite; do perf "$SPID" "$DIR/vhost.0" "$w"; done
node "$CLI" rpc -s "$DIR/rpc.sock" vhost_get_controllers > /dev/null
kill -INT "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=

# (2) qemu-storage-daemon on core 0: a 64 MiB file on tmpfs (page cache = memory) as vhost-user-blk.
if df --output=fstype /dev/shm 2>/dev/null | grep -q tmpfs; then IMG=$(mktemp -p /dev/shm storkit-qsd-XXXXXX); else IMG=$(mktemp -p "$DIR"); fi
truncate -s 64M "$IMG"
taskset -c 0 qemu-storage-daemon \
  --blockdev driver=file,node-name=f,filename="$IMG",cache.direct=off \
  --export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path="$DIR/qsd.sock",writable=on,num-queues=1 \
  > "$DIR/qsd.log" 2>&1 &
QPID=$!
for _ in $(seq 100); do [ -S "$DIR/qsd.sock" ] && break; sleep 0.1; done
[ -S "$DIR/qsd.sock" ] || { cat "$DIR/qsd.log"; exit 1; }
echo "(2) qemu-storage-daemon $(qemu-storage-daemon --version | head -1 | awk '{print $3}') on core 0 (tmpfs file 64 MiB), same bdevperf:"
for w in randread randwrite; do perf "$QPID" "$DIR/qsd.sock" "$w"; done
kill "$QPID"; wait "$QPID" 2>/dev/null || true; QPID=
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
