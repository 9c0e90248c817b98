#!/bin/bash
# mkinitrd.sh OUT.cpio.gz WORKLOAD.sh [EXTRA_FILE...]
# A busybox initramfs for the PCIe guest tests: loads the modules in $MODS (with their
# dependencies, in order), runs WORKLOAD.sh and powers off, printing "GUEST-RESULT: END rc=N".
# EXTRA_FILEs land in the initramfs root. (Modelled on the shared peers' guest harness.)
set -euo pipefail
OUT=${1:?usage: mkinitrd.sh OUT.cpio.gz WORKLOAD.sh [FILE...]}
WORKLOAD=${2:?workload script}
shift 2
KVER=${KVER:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1 | sed "s|/boot/vmlinuz-||")}
R=$(mktemp -d /tmp/storkit-pcie-initrd.XXXXXX); trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules}
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
touch "$R/etc/modules.order"
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci ${MODS:-}; do add_mod "$m"; done
cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo /bin/true > /proc/sys/kernel/modprobe
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m 2>/dev/null; done
sh /workload.sh; rc=$?
echo "GUEST-RESULT: END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)s"
sync; poweroff -f
INIT
cp "$WORKLOAD" "$R/workload.sh"
for f in "$@"; do cp "$f" "$R/"; done
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$OUT"
