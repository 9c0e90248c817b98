# Target restart: write, announce PAUSE (the host restarts the target), then write again,
# read back and verify both. I/O issued while the target is down waits for the reconnect.
res() { echo "GUEST-RESULT: $*"; }
[ -b "$DEV" ] || { res "FAIL no block device $DEV"; exit 1; }
awk 'BEGIN { for (i = 0; i < 2048; i++) printf "%-511s\n", "before-restart " i }' > /tmp/a
awk 'BEGIN { for (i = 0; i < 2048; i++) printf "%-511s\n", "after-restart " i }' > /tmp/b
dd if=/tmp/a of=$DEV bs=1M seek=1 oflag=direct conv=fsync 2>/dev/null || { res "FAIL write 1"; exit 1; }
res "PAUSE"
sleep 2
dd if=/tmp/b of=$DEV bs=1M seek=2 oflag=direct conv=fsync 2>/dev/null || { res "FAIL write 2"; exit 1; }
dd if=$DEV of=/tmp/a2 bs=1M skip=1 count=1 iflag=direct 2>/dev/null
dd if=$DEV of=/tmp/b2 bs=1M skip=2 count=1 iflag=direct 2>/dev/null
cmp /tmp/a /tmp/a2 && cmp /tmp/b /tmp/b2 || { res "FAIL verify"; exit 1; }
res "verify OK"
