# Workload of the app's vhost guest test (packages/app/test/vhost-guest.test.ts): print the md5 of
# the first 8 MiB (the host wrote it through the bdev), write a sector-numbered pattern over
# [4M, 8M), read it back and compare. The host then reads [4M, 8M) through the bdev.
res() { echo "GUEST-RESULT: $*"; }
[ -b "$DEV" ] || { res "FAIL no block device $DEV"; exit 1; }
res "dev=$DEV size=$(blockdev --getsize64 $DEV) lbs=$(blockdev --getss $DEV)"
res "md5 head: $(dd if=$DEV bs=1M count=8 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
awk 'BEGIN { for (i = 0; i < 8192; i++) printf "%-511s\n", "storkit-tgt vhost sector " i }' > /tmp/pat
dd if=/tmp/pat of=$DEV bs=1M seek=4 oflag=direct conv=fsync 2>/dev/null || { res "FAIL write"; exit 1; }
dd if=$DEV of=/tmp/back bs=1M skip=4 count=4 iflag=direct 2>/dev/null || { res "FAIL read back"; exit 1; }
cmp /tmp/pat /tmp/back || { res "FAIL verify mismatch"; exit 1; }
res "verify OK md5=$(md5sum < /tmp/pat | cut -d' ' -f1)"
