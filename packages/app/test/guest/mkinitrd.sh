#!/bin/bash
# mkinitrd.sh OUT.cpio.gz WORKLOAD.sh
# A busybox initramfs for the app's QEMU (TCG) guest tests, booting this machine's Debian kernel
# (linux-image-amd64): loads the modules named in $MODS (with their dependencies, in order),
# copies the programs named in $BINS with the libraries they link into /opt/bin (ahead of busybox
# on PATH, never over its applets), runs WORKLOAD.sh as root and powers off. The workload prints
# "GUEST-RESULT: ..." lines; /init adds "GUEST-RESULT: END rc=N". Kernel command line words
# key=value are the workload's parameters (/proc/cmdline). vhdev=blk|scsi sets $DEV to the first
# virtio disk (vda or sda) once it appears. (The idea of ../shared/peers/guest/mkinitrd.sh.)
set -euo pipefail
OUT=${1:?usage: MODS="..." [BINS="..."] mkinitrd.sh OUT.cpio.gz WORKLOAD.sh}
WORKLOAD=${2:?workload script}
KVER=${KVER:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1 | sed "s|/boot/vmlinuz-||")}
BASE_MODS="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci"

R=$(mktemp -d /tmp/storkit-initrd.XXXXXX); trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,opt/bin,etc,proc,sys,dev,tmp,run,lib/modules,lib64}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list-full); do
  [ -e "$R/$a" ] || { mkdir -p "$R/$(dirname "$a")"; ln -s /bin/busybox "$R/$a"; }
done
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"; echo "root:x:0:" > "$R/etc/group"

declare -A seen
add_mod() {   # a module after its dependencies, uncompressed; the insmod order recorded
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

for b in ${BINS:-}; do
  cp -L "$b" "$R/opt/bin/"
  for l in $(ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    [ -e "$R/$l" ] || { mkdir -p "$R/$(dirname "$l")"; cp -L "$l" "$R/$l"; }
  done
done

cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/opt/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo /bin/true > /proc/sys/kernel/modprobe
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m 2>/dev/null; done
case " $(cat /proc/cmdline) " in
  *" vhdev=blk "*) DEV=/dev/vda ;;
  *" vhdev=scsi "*) DEV=/dev/sda ;;
esac
if [ -n "${DEV:-}" ]; then
  i=0; while [ ! -b $DEV ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
  export DEV
fi
sh /workload.sh; rc=$?
echo "GUEST-RESULT: END rc=$rc"
sync; poweroff -f
INIT
cp "$WORKLOAD" "$R/workload.sh"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$OUT"
