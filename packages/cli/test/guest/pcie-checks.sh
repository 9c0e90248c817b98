#!/bin/bash
# pcie-checks.sh: what the PCIe guest test runs inside the guest (pcie-guest.sh), from the
# project root. Three QEMU controllers, found by serial while the kernel's nvme driver has them:
# STORKITA (two namespaces: the VFIO checks, SPDK's identify side by side, hello-nvme, the target
# path), STORKITU (the uio path, and setup's refusal of a mounted filesystem), STORKITH (behind a
# hotplug port: removed with QEMU's device_del under I/O). Prints GUEST-RESULT lines; the guest
# mocha specs (packages/*/dist/test/**/*.guest.js) print their own report. Every node start costs
# seconds under TCG: the checks share as few processes as they can (CI pays for each).
set -u
res() { echo "GUEST-RESULT: $*"; }
mark() { echo "GUEST-TIME: $(cut -d' ' -f1 /proc/uptime) $*"; }
S="node packages/cli/dist/src/main.js"
B=../shared/peers/spdk/bin
bdf_of() { for c in /sys/class/nvme/nvme*; do [ "$(tr -d ' ' < "$c/serial")" = "$1" ] && cat "$c/address"; done; }
blk_of() {  # the block device of namespace 1 of the controller at $1 (multipath heads named nvmeXnY)
  local e; e=$(ls /sys/bus/pci/devices/"$1"/nvme/nvme*/ | grep -E '^nvme[0-9]+(c[0-9]+)?n1$' | head -1)
  echo "/dev/$(echo "$e" | sed -E 's/c[0-9]+n/n/')"
}
drv() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)"; }
for i in $(seq 100); do [ -n "$(bdf_of STORKITH)" ] && break; sleep 0.1; done
A=$(bdf_of STORKITA); U=$(bdf_of STORKITU); H=$(bdf_of STORKITH)
res "controllers A=$A U=$U H=$H"
[ -n "$A" ] && [ -n "$U" ] && [ -n "$H" ] || { res "FAIL controllers missing"; exit 1; }

# storkit setup: one run binds A and H to vfio-pci and refuses U, which holds a mounted filesystem;
# unmounted, U goes to uio_pci_generic.
mark setup
BLK=$(blk_of "$U")
mkfs.ext4 -q "$BLK" && mkdir -p /mnt/u && mount "$BLK" /mnt/u || res "FAIL mount $BLK"
$S setup -a "$A" -a "$H" -a "$U" --hugemem 600 > /tmp/setup1.txt 2>&1
rc=$?; cat /tmp/setup1.txt; res "setup-mounted rc=$rc $(grep -c 'refused: Active devices: mount@' /tmp/setup1.txt) refusal(s) A=$(drv "$A") H=$(drv "$H") U=$(drv "$U")"
umount /mnt/u
$S setup -a "$U" --driver uio_pci_generic --hugemem 0; res "setup-uio rc=$? U=$(drv "$U")"

# SPDK's identify on A, for the comparing spec (which runs storkit's in the mocha process).
mark identify
$B/spdk_nvme_identify -r "trtype:PCIe traddr:$A" > /tmp/identify-spdk.txt 2>&1; res "spdk-identify rc=$?"

# examples/hello-nvme, as its README runs it, on QEMU's controller.
mark hello
node examples/hello-nvme/dist/src/main.js -r "trtype:PCIe traddr:$A" > /tmp/hello.txt 2>&1
rc=$?; sed 's/^/hello: /' /tmp/hello.txt; res "hello rc=$rc"

# The driver, identify against SPDK's, the nvme bdev and the target against QEMU's controllers
# (mocha, one process).
mark mocha
PCIE_A=$A PCIE_U=$U PCIE_H=$H SPDK_IDENTIFY=/tmp/identify-spdk.txt \
  node node_modules/mocha/bin/mocha.js --timeout 300000 'packages/*/dist/test/**/*.guest.js'
res "mocha rc=$?"

mark reset
$S setup reset; res "setup-reset rc=$? A=$(drv "$A") U=$(drv "$U")"
mark end
exit 0
