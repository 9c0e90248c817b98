#!/bin/bash
# mkinitrd.sh OUT.cpio.gz WORKLOAD.sh
# A busybox initramfs for the nvme package's guest tests: loads the kernel modules named in $MODS
# (with their dependencies, in order), runs WORKLOAD.sh as root, powers off. The workload prints
# "GUEST-RESULT: ..." lines; /init adds "GUEST-RESULT: END rc=N". Its parameters are key=value
# words of the kernel command line. (The idea of ../shared/peers/guest, copied: tests do not call it.)
set -euo pipefail
OUT=${1:?usage: MODS="..." mkinitrd.sh OUT.cpio.gz WORKLOAD.sh}
WORKLOAD=${2:?workload script}
KVER=${KVER:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1 | sed "s|/boot/vmlinuz-||")}
BASE_MODS="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"

R=$(mktemp -d /tmp/storkit-nvme-initrd.XXXXXX); trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list-full); do
  [ -e "$R/$a" ] || { mkdir -p "$R/$(dirname "$a")"; ln -s /bin/busybox "$R/$a"; }
done
declare -A seen
add_mod() {   # a module after its dependencies, uncompressed; the insmod order is recorded
  local m=$1 f d out
  [ -n "${seen[$m]:-}" ] && return; seen[$m]=1
  f=$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null) || { echo "no module $m" >&2; exit 1; }
  [ "$f" = "(builtin)" ] && return
  for d in $(modinfo -k "$KVER" -F depends "$m" | tr , ' '); do add_mod "$d"; done
  out=$(basename "$f"); out=${out%.xz}; out=${out%.zst}; out=${out%.gz}
  case $f in
    *.xz) xz -dc "$f" ;; *.zst) zstd -dcq "$f" ;; *.gz) gzip -dc "$f" ;; *) cat "$f" ;;
  esac > "$R/lib/modules/$out"
  echo "$out" >> "$R/etc/modules.order"
}
touch "$R/etc/modules.order"
for m in $BASE_MODS ${MODS:-}; do add_mod "$m"; done
cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo /bin/true > /proc/sys/kernel/modprobe
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
sh /workload.sh; rc=$?
echo "GUEST-RESULT: END rc=$rc"
sync; poweroff -f
INIT
cp "$WORKLOAD" "$R/workload.sh"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$OUT"
