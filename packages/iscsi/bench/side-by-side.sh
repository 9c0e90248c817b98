#!/usr/bin/env bash
# storkit tgt (target on core 0) vs Debian's tgtd (core 0) in one session: libiscsi's iscsi-perf
# on core 1, 4 KiB random reads, QD 32 and 128, plus each target's CPU-seconds from /proc/PID/stat.
# Usage: packages/iscsi/bench/side-by-side.sh [SECONDS] [storkit tgt options, e.g. --slice-us 20]
# (needs libiscsi-bin and tgt; root for tgtd)
# bench:targets 5
set -euo pipefail
SECS=${1:-10}
shift || true
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DIR=$(mktemp -d)
HZ=$(getconf CLK_TCK)
trap 'kill -9 $SPID $TPID 2>/dev/null || true; rm -rf "$DIR"' EXIT
SPID=; TPID=

cpu() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
perf() { # PID URL QD
  local c0 c1 out
  c0=$(cpu "$1")
  # iscsi-perf never stops if one progress tick lands more than a second late (a stalled target
  # or a busy machine): bound it.
  out=$(timeout $((SECS + 30)) taskset -c 1 iscsi-perf -t "$SECS" -m "$3" -b 8 -r "$2" | tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -1) || true
  c1=$(cpu "$1")
  echo "$out" | awk -v qd="$3" -v c="$(echo "$c1 - $c0" | bc)" -v s="$SECS" \
    '{ printf "  QD %3d: %7d IOPS, target %5.2f CPU-s (%.2f cores), %6.0f IOPS per target CPU-second\n", qd, $3, c, c / s, $3 * s / (c > 0 ? c : 1) }'
}

# storkit: the default config's layout on a private port (256 MiB malloc bdev, 512-byte blocks).
P1=$(free_port)
cat > "$DIR/storkit.json" <<JSON
{"subsystems":[
 {"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":524288,"block_size":512}}]},
 {"subsystem":"iscsi","config":[
  {"method":"iscsi_set_options","params":{"node_base":"iqn.2016-06.io.storkit","max_queue_depth":128}},
  {"method":"iscsi_create_portal_group","params":{"tag":1,"portals":[{"host":"127.0.0.1","port":"$P1"}]}},
  {"method":"iscsi_create_initiator_group","params":{"tag":1,"initiators":["ANY"],"netmasks":["ANY"]}},
  {"method":"iscsi_create_target_node","params":{"name":"disk1","pg_ig_maps":[{"pg_tag":1,"ig_tag":1}],
    "luns":[{"bdev_name":"Malloc0","lun_id":0}],"queue_depth":128,"disable_chap":true}}]}]}
JSON
taskset -c 0 node "$ROOT/packages/cli/dist/src/main.js" tgt --no-stats -m 0x1 -r "$DIR/rpc.sock" \
  --json "$DIR/storkit.json" "$@" > "$DIR/storkit.log" 2>&1 &
SPID=$!
until grep -q "storkit tgt: running" "$DIR/storkit.log" 2>/dev/null; do sleep 0.2; done
echo "storkit tgt -m 0x1 $* (malloc 256 MiB), iscsi-perf -t $SECS -b 8 -r on core 1:"
for qd in 32 128; do perf $SPID "iscsi://127.0.0.1:$P1/iqn.2016-06.io.storkit:disk1/0" $qd; done
kill $SPID; wait $SPID 2>/dev/null || true; SPID=

# tgt: a RAM-backed (tmpfs) 256 MiB LUN.
P2=$(free_port)
truncate -s 256M "$DIR/tgt.img" 2>/dev/null
if df --output=fstype /dev/shm | grep -q tmpfs; then IMG=$(mktemp -p /dev/shm storkit-tgt-XXXXXX); truncate -s 256M "$IMG"; else IMG="$DIR/tgt.img"; fi
CTL=$((RANDOM % 1000 + 100))
taskset -c 0 tgtd -f -C $CTL --iscsi portal=127.0.0.1:$P2 > "$DIR/tgt.log" 2>&1 &
TPID=$!
sleep 1
tgtadm -C $CTL --lld iscsi --op new --mode target --tid 1 -T iqn.2001-04.com.example:tgt1
tgtadm -C $CTL --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$IMG"
tgtadm -C $CTL --lld iscsi --op bind --mode target --tid 1 -I ALL
echo "tgtd (Debian tgt, RAM-backed file on tmpfs), same client:"
for qd in 32 128; do perf $TPID "iscsi://127.0.0.1:$P2/iqn.2001-04.com.example:tgt1/1" $qd; done
kill -9 $TPID; wait $TPID 2>/dev/null || true; TPID=
rm -f "$IMG"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
