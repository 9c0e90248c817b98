# Workload of kernel-initiators.test.ts: the Linux kernel's initiators, in one guest, against
# storkit tgt on the host (10.0.2.2 through QEMU's user network; the target listens on 127.0.0.1).
# 1. nvme-tcp, connected as `nvme connect` does (a line to /dev/nvme-fabrics) with header and data
#    digests: the kernel refuses a connection whose ICResp does not grant what it asked for, so a
#    live controller proves both digests are on. A pattern written and read back with O_DIRECT;
#    Deallocate (blkdiscard) and Write Zeroes (blkdiscard -z) read back as zeroes.
# 2. iscsi_tcp with open-iscsi's iscsid and iscsiadm: SendTargets discovery, login to disk1 with
#    CRC32C header and data digests, a pattern written and read back, UNMAP read back as zeroes;
#    disk2 requires CHAP: a wrong secret is refused, the right one logs in, data verifies.
res() { echo "GUEST-RESULT: $*"; }
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
NVMF_PORT=$(arg nvmfport); NQN=$(arg nqn); P=10.0.2.2:$(arg iscsiport); BASE=$(arg base)
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
rc=0
head -c 1048576 /dev/zero > /tmp/zero

# pattern DEV OFFSET_MIB TAG: 4 MiB of numbered 512-byte sectors written at OFFSET, read back, compared.
pattern() {
  awk -v t="$3" 'BEGIN { for (i = 0; i < 8192; i++) printf "%-511s\n", t " sector " i }' > /tmp/pat
  dd if=/tmp/pat of=$1 bs=1M seek=$2 oflag=direct conv=fsync 2>/dev/null &&
    dd if=$1 of=/tmp/back bs=1M skip=$2 count=4 iflag=direct 2>/dev/null && cmp -s /tmp/pat /tmp/back
}
# zeroes DEV OFFSET_MIB: 1 MiB at OFFSET reads back as zeroes.
zeroes() {
  dd if=$1 of=/tmp/back bs=1M count=1 skip=$2 iflag=direct 2>/dev/null && cmp -s /tmp/zero /tmp/back
}
# discard DEV OFFSET_MIB [-z]: random data, then a discard (or write zeroes) of 1 MiB over it.
discard() {
  dd if=/dev/urandom of=$1 bs=1M count=1 seek=$2 oflag=direct 2>/dev/null &&
    /opt/bin/blkdiscard $3 -o $(($2 << 20)) -l $((1 << 20)) $1 && zeroes $1 $2
}

# ---- NVMe/TCP ----
OPTS="transport=tcp,traddr=10.0.2.2,trsvcid=$NVMF_PORT,nqn=$NQN,hdr_digest,data_digest,nr_io_queues=1"
if echo "$OPTS" > /dev/nvme-fabrics 2> /tmp/err; then
  i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  C=/sys/class/nvme/nvme0; D=/dev/nvme0n1
  res "nvme connected: model=$(tr -d ' ' < $C/model) subsysnqn=$(cat $C/subsysnqn) state=$(cat $C/state)"
  res "nvme ns1: $(blockdev --getsize64 $D) bytes, $(blockdev --getss $D)-byte blocks"
  if pattern $D 8 nvme-tcp; then res "nvme pattern verified"; else res "FAIL nvme pattern"; rc=1; fi
  if discard $D 16; then res "nvme deallocate reads back zeroes"; else res "FAIL nvme deallocate"; rc=1; fi
  if discard $D 17 -z; then res "nvme write zeroes reads back zeroes"; else res "FAIL nvme write zeroes"; rc=1; fi
  echo 1 > $C/delete_controller && res "nvme disconnected" || { res "FAIL nvme disconnect"; rc=1; }
else
  res "FAIL nvme connect: $(cat /tmp/err) $(dmesg | grep -i nvme | tail -3 | tr '\n' ' ')"; rc=1
fi

# ---- iSCSI ----
mkdir -p /etc/iscsi /var/lib/iscsi /run/lock/iscsi /var/lock/iscsi
echo "InitiatorName=iqn.1993-08.org.debian:01:storkit-guest" > /etc/iscsi/initiatorname.iscsi
touch /etc/iscsi/iscsid.conf
/opt/bin/iscsid -f > /tmp/iscsid.log 2>&1 &
sleep 1
A=/opt/bin/iscsiadm
if $A -m discovery -t sendtargets -p $P > /tmp/disc 2>&1; then
  res "iscsi discovery: $(sed 's/.* //' /tmp/disc | sort | tr '\n' ' ')"
else res "FAIL iscsi discovery: $(tr '\n' ' ' < /tmp/disc)"; rc=1; fi
set_() { $A -m node -T "$1" -p $P -o update -n "$2" -v "$3" > /dev/null; }
login() { $A -m node -T "$1" -p $P --login > /tmp/login 2>&1; }
# disk TARGET: the disk of the target's session (LUN 0), once it appeared.
disk() {
  i=0
  while [ $i -lt 300 ]; do
    d=$($A -m session -P 3 2>/dev/null | awk -v t="$1" '/^Target: / { on = ($2 == t) } on && /Attached scsi disk/ { print "/dev/" $4; exit }')
    [ -n "$d" ] && [ -b "$d" ] && { echo $d; return 0; }
    sleep 0.1; i=$((i+1))
  done
  return 1
}
for n in disk1 disk2; do $A -m node -o new -T $BASE:$n -p $P > /dev/null; done
set_ $BASE:disk1 'node.conn[0].iscsi.HeaderDigest' CRC32C
set_ $BASE:disk1 'node.conn[0].iscsi.DataDigest' CRC32C
if login $BASE:disk1 && L=$(disk $BASE:disk1); then
  SID=$($A -m session | sed -n "s/.*\[\([0-9]*\)\].*$BASE:disk1.*/\1/p")
  $A -m session -r $SID -P 2 > /tmp/sess 2>&1
  res "iscsi disk1: digests $(sed -n 's/.*HeaderDigest: //p' /tmp/sess)/$(sed -n 's/.*DataDigest: //p' /tmp/sess)"
  res "iscsi disk1 LUN 0: $(blockdev --getsize64 $L) bytes, $(blockdev --getss $L)-byte blocks"
  if pattern $L 8 iscsi; then res "iscsi pattern verified"; else res "FAIL iscsi pattern"; rc=1; fi
  if discard $L 16; then res "iscsi unmap reads back zeroes"; else res "FAIL iscsi unmap"; rc=1; fi
else res "FAIL iscsi login disk1: $(tr '\n' ' ' < /tmp/login) $(tail -3 /tmp/iscsid.log | tr '\n' ' ')"; rc=1; fi

# CHAP (one-way) on disk2: a wrong secret first, which the target must refuse.
set_ $BASE:disk2 node.session.auth.authmethod CHAP
set_ $BASE:disk2 node.session.auth.username guestuser
set_ $BASE:disk2 node.session.auth.password wrongsecret99
if login $BASE:disk2; then res "FAIL iscsi disk2 accepted a wrong CHAP secret"; rc=1
else res "iscsi wrong CHAP secret refused"; fi
set_ $BASE:disk2 node.session.auth.password guestsecret12
if login $BASE:disk2 && L2=$(disk $BASE:disk2) && pattern $L2 0 chap; then res "iscsi CHAP login, pattern verified"
else res "FAIL iscsi CHAP: $(tr '\n' ' ' < /tmp/login)"; rc=1; fi
res "iscsi sessions: $($A -m session 2>/dev/null | wc -l)"
$A -m node --logoutall=all > /dev/null 2>&1 && res "iscsi logged out" || { res "FAIL iscsi logout"; rc=1; }

dmesg | grep -iE '(nvme|iscsi|connection).*(error|fail|digest|timeout)' | tail -5 | while read -r l; do res "dmesg: $l"; done
exit $rc
