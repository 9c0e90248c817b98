#!/bin/bash
# pcie-guest.sh OUT_DIR COMMAND [ARGS...]
# Boot a TCG guest with QEMU's NVMe controllers behind an emulated Intel IOMMU (intel_iommu=on
# iommu=pt: vfio-pci gets its own IOMMU domain, a device on uio_pci_generic keeps physical
# addresses) and run COMMAND in it, as root, in this machine's root filesystem (9p, read-only,
# under a writable overlay) from the directory this script was started in. The controllers stay
# on the kernel's nvme driver: COMMAND prepares them itself (storkit setup), as a user would.
# (The idea of ../shared/peers/guest/nvme-pcie.sh, kept in the project so tests own it.)
#
# Env: QEMU_NVME (the -drive/-device arguments; default: one controller, one 256 MiB namespace),
# QMP (a path: QEMU's monitor as a QMP socket there, for device_del), GUEST_MEM (MiB, 2048),
# GUEST_CPUS (1), TIMEOUT (s, 900). COMMAND sees NVME_BDFS (every NVMe controller's address).
# COMMAND's output goes to the console; lines "GUEST-RESULT: ..." are the guest's reports, and
# "GUEST-RESULT: END rc=N" ends the run. Exit status: COMMAND's; 3 if the guest never reported.
set -u
OUT=${1:?usage: pcie-guest.sh OUT_DIR COMMAND...}; shift
[ $# -ge 1 ] || { echo "usage: pcie-guest.sh OUT_DIR COMMAND..." >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
{ printf 'cd %q || exit 97\nexec' "$(pwd)"; printf ' %q' "$@"; echo; } > "$OUT/cmd.sh"
if [ -z "${QEMU_NVME:-}" ]; then
  truncate -s 256M "$OUT/ns1.img"
  QEMU_NVME="-drive file=$OUT/ns1.img,if=none,id=ns1,format=raw -device nvme,serial=storkit0001,drive=ns1"
fi
cat > "$OUT/workload.sh" <<'WL'
res() { echo "GUEST-RESULT: $*"; }
ip link set lo up
mkdir -p /host && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 host /host || { res "FAIL 9p mount"; exit 1; }
BDFS=""
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/class)" = "0x010802" ] && BDFS="$BDFS $(basename $d)"
done
BDFS=${BDFS# }
mkdir -p /ov && mount -t tmpfs -o size=75% tmpfs /ov && mkdir -p /ov/upper /ov/work /root-rw
mount -t overlay overlay -o lowerdir=/host,upperdir=/ov/upper,workdir=/ov/work /root-rw || { res "FAIL overlay"; exit 1; }
for m in proc sys dev; do mount --bind /$m /root-rw/$m; done
mkdir -p /root-rw/dev/hugepages && mount -t hugetlbfs nodev /root-rw/dev/hugepages
cp /cmd.sh /root-rw/run/pcie-guest-cmd.sh
chroot /root-rw /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
  NVME_BDFS="$BDFS" /bin/bash /run/pcie-guest-cmd.sh
WL
MODS="9pnet 9pnet_virtio netfs fscache 9p overlay vfio vfio_iommu_type1 vfio-pci-core vfio-pci uio uio_pci_generic nvme nvme-fabrics nvme-tcp crc32c_generic ext4" \
  "$HERE/mkinitrd.sh" "$OUT/initrd.cpio.gz" "$OUT/workload.sh" "$OUT/cmd.sh"
KERNEL=${KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1)}
MONITOR=()
[ -n "${QMP:-}" ] && MONITOR=(-qmp "unix:$QMP,server=on,wait=off")
# no_timer_check: on a loaded host the kernel's boot-time timer check can fail under TCG.
# shellcheck disable=SC2086
timeout -k 5 "${TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -nographic -no-reboot \
  -M q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on \
  -cpu max -m "${GUEST_MEM:-2048}" -smp "${GUEST_CPUS:-1}" -nic none \
  -kernel "$KERNEL" -initrd "$OUT/initrd.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 no_timer_check intel_iommu=on iommu=pt" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  "${MONITOR[@]}" $QEMU_NVME </dev/null
qrc=$?
exit $qrc
