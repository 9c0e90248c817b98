# Guest workload of examples/nvmf-target/test/guest.test.ts (one boot, two examples): a disk of the
# vhost-blk example (/dev/vda, vhost-user-blk-pci), then the kernel's NVMe/TCP initiator against the
# nvmf-target example (10.0.2.2 is the host through QEMU's user network), the way `nvme connect`
# does it (/dev/nvme-fabrics). On each: a sector-numbered pattern written at 4 MiB, read back, compared.
res() { echo "GUEST-RESULT: $*"; }
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
wait_dev() { i=0; while [ ! -b "$1" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; [ -b "$1" ]; }
check() { # DEV LABEL
  awk -v l="$2" 'BEGIN { for (i = 0; i < 8192; i++) printf "%-511s\n", l " sector " i }' > /tmp/pat
  dd if=/tmp/pat of="$1" bs=1M seek=4 oflag=direct conv=fsync 2>/dev/null || { res "$2 FAIL write"; return 1; }
  dd if="$1" of=/tmp/back bs=1M skip=4 count=4 iflag=direct 2>/dev/null || { res "$2 FAIL read"; return 1; }
  cmp -s /tmp/pat /tmp/back || { res "$2 FAIL verify"; return 1; }
  res "$2 verify OK md5=$(md5sum < /tmp/pat | cut -d' ' -f1)"
}
rc=0
if wait_dev /dev/vda; then
  res "vhost dev=/dev/vda size=$(blockdev --getsize64 /dev/vda) queues=$(ls /sys/block/vda/mq | wc -l)"
  check /dev/vda vhost || rc=1
else res "vhost FAIL no /dev/vda"; rc=1; fi

ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
if echo "transport=tcp,traddr=10.0.2.2,trsvcid=$(arg port),nqn=$(arg nqn)" > /dev/nvme-fabrics && wait_dev /dev/nvme0n1; then
  # With native multipath nvme0n1 is the head; its path (nvme0c0n1) holds the hardware queues.
  q=0; for d in /sys/block/nvme0c0n1/mq /sys/block/nvme0n1/mq; do [ -d $d ] && q=$((q + $(ls $d | wc -l))); done
  res "nvme serial=$(cat /sys/class/nvme/nvme0/serial | tr -d ' ') size=$(blockdev --getsize64 /dev/nvme0n1) queues=$q"
  check /dev/nvme0n1 nvme || rc=1
  echo 1 > /sys/class/nvme/nvme0/delete_controller && res "nvme disconnected"
else res "nvme FAIL connect"; dmesg | grep -i nvme | tail -5; rc=1; fi
exit $rc
