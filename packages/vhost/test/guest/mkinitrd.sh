#!/bin/bash
# mkinitrd.sh OUT.cpio.gz WORKLOAD.sh
# A busybox initramfs for the vhost integration tests: loads the virtio-pci blk/scsi modules,
# waits for the test disk ($DEV: /dev/vda, or /dev/sda with vhdev=scsi on the kernel command
# line), runs WORKLOAD and powers off. The workload prints "GUEST-RESULT: ..." lines; /init adds
# "GUEST-RESULT: END rc=N". (Modelled on the shared peers/vhost harness.)
set -euo pipefail
OUT=${1:?usage: mkinitrd.sh OUT.cpio.gz WORKLOAD.sh}
WORKLOAD=${2:?usage: mkinitrd.sh OUT.cpio.gz WORKLOAD.sh}
KVER=${KVER:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1 | sed "s|/boot/vmlinuz-||")}
MODS="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk scsi_mod sd_mod virtio_scsi"

R=$(mktemp -d /tmp/storkit-initrd.XXXXXX); trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list-full); do
  [ -e "$R/$a" ] || { mkdir -p "$R/$(dirname "$a")"; ln -s /bin/busybox "$R/$a"; }
done
declare -A seen
add_mod() {
  local m=$1 f d out
  [ -n "${seen[$m]:-}" ] && return; seen[$m]=1
  f=$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null) || return 0
  [ "$f" = "(builtin)" ] && return
  for d in $(modinfo -k "$KVER" -F depends "$m" | tr , ' '); do add_mod "$d"; done
  out=$(basename "$f"); out=${out%.xz}; out=${out%.zst}; out=${out%.gz}
  case $f in
    *.xz) xz -dc "$f" ;; *.zst) zstd -dcq "$f" ;; *.gz) gzip -dc "$f" ;; *) cat "$f" ;;
  esac > "$R/lib/modules/$out"
  echo "$out" >> "$R/etc/modules.order"
}
for m in $MODS; do add_mod "$m"; done
cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo /bin/true > /proc/sys/kernel/modprobe
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m 2>/dev/null; done
DEV=/dev/vda; grep -q 'vhdev=scsi' /proc/cmdline && DEV=/dev/sda
i=0; while [ ! -b $DEV ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
export DEV
sh /workload.sh; rc=$?
echo "GUEST-RESULT: END rc=$rc"
sync; poweroff -f
INIT
cp "$WORKLOAD" "$R/workload.sh"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$OUT"
