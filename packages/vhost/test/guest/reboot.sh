# In-VM restart: the first boot writes a marker and a pattern, then reboots the VM (QEMU resets
# the device: the rings are stopped with GET_VRING_BASE and started again on the same socket).
# The second boot finds the marker, verifies the pattern and powers off.
res() { echo "GUEST-RESULT: $*"; }
[ -b "$DEV" ] || { res "FAIL no block device $DEV"; exit 1; }
awk 'BEGIN { for (i = 0; i < 2048; i++) printf "%-511s\n", "across-reboot " i }' > /tmp/p
if [ "$(dd if=$DEV bs=512 count=1 skip=100 2>/dev/null | head -c 12)" = "STORKIT-BOOT" ]; then
  dd if=$DEV of=/tmp/q bs=1M skip=3 count=1 iflag=direct 2>/dev/null
  cmp /tmp/p /tmp/q || { res "FAIL verify after reboot"; exit 1; }
  res "second boot verify OK"
else
  dd if=/tmp/p of=$DEV bs=1M seek=3 oflag=direct conv=fsync 2>/dev/null || { res "FAIL write"; exit 1; }
  printf 'STORKIT-BOOT' | dd of=$DEV bs=512 seek=100 conv=fsync 2>/dev/null
  res "first boot wrote"
  sync; reboot -f
fi
