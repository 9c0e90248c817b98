# Workload of kernel-initiators.test.ts: the Linux kernel's initiators, in one guest, against
# storkit tgt on the host (10.0.2.2 through QEMU's user network; the target listens on 127.0.0.1).
# 1. nvme-tcp, connected as `nvme connect` does (a line to /dev/nvme-fabrics) with header and data
#    digests: the kernel refuses a connection whose ICResp does not grant what it asked for, so a
#    live controller proves both digests are on. One subsystem, three namespaces, each seen with its
#    size and block size; a pattern written and read back with O_DIRECT; Deallocate (blkdiscard)
#    and Write Zeroes (blkdiscard -z) read back as zeroes; fio's verified random writes (libaio,
#    O_DIRECT, crc32c, two jobs per namespace, iodepth 16). Then the host restarts the target (the
#    guest's "CUE restart" line): the kernel reconnects (ctrl_loss_tmo, reconnect_delay) and fio
#    verifies again on the same controller.
# 2. iscsi_tcp with open-iscsi's iscsid and iscsiadm: SendTargets discovery, login to disk1 (two
#    LUNs) with CRC32C header and data digests, a pattern written and read back, UNMAP read back as
#    zeroes, fio verified on both LUNs; a target restart that the session recovers from
#    (replacement_timeout) and fio verified again. disk2 requires CHAP: a wrong secret is refused,
#    the right one logs in. disk3 requires mutual CHAP: the initiator refuses a target that does not
#    know the secret it expects (password_in), and logs in when it does.
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
# fiov TAG DEV...: fio's verified random writes on every DEV: two jobs each (numjobs, each on its
# own 2 MiB), libaio with O_DIRECT at iodepth 16, 4 KiB blocks, crc32c in every block checked once
# the writes are done. Prints "TAG fio: rc=.. jobs=.. errors=.. written=..KiB verified=..KiB" from
# fio's terse lines (one a job: field 5 its error, 6 KiB read, 47 KiB written); 0 when all verified.
fiov() {
  tag=$1; shift
  jobs=""; for d in "$@"; do jobs="$jobs --name=${d##*/} --filename=$d"; done
  /opt/bin/fio --thread --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=16 \
    --numjobs=2 --size=2M --offset_increment=2M --verify=crc32c --verify_fatal=1 \
    --output-format=terse $jobs > /tmp/fio.out 2> /tmp/fio.err
  frc=$?
  res "$(awk -F';' -v t="$tag" -v rc=$frc 'NF > 100 { n++; e += ($5 != 0); r += $6; w += $47 }
    END { printf "%s fio: rc=%d jobs=%d errors=%d written=%dKiB verified=%dKiB", t, rc, n, e, w, r }' /tmp/fio.out)"
  [ $frc -eq 0 ] || { res "FAIL $tag fio: $(tail -5 /tmp/fio.err | tr '\n' ' ')"; rc=1; }
}
# until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds; 1 if it never did.
until_() {
  n=$(($1 * 10)); shift; i=0
  while ! "$@" 2>/dev/null; do i=$((i+1)); [ $i -ge $n ] && return 1; sleep 0.1; done
}

# ---- NVMe/TCP ----
# ctrl_loss_tmo/reconnect_delay: after a lost connection the kernel tries again every second for a
# minute before it gives the controller up (the target restart below).
OPTS="transport=tcp,traddr=10.0.2.2,trsvcid=$NVMF_PORT,nqn=$NQN,hdr_digest,data_digest,nr_io_queues=1"
OPTS="$OPTS,ctrl_loss_tmo=60,reconnect_delay=1"
if echo "$OPTS" > /dev/nvme-fabrics 2> /tmp/err; then
  C=/sys/class/nvme/nvme0; NS="/dev/nvme0n1 /dev/nvme0n2 /dev/nvme0n3"
  for D in $NS; do until_ 30 test -b $D; done
  res "nvme connected: model=$(tr -d ' ' < $C/model) subsysnqn=$(cat $C/subsysnqn) state=$(cat $C/state)"
  n=0; for D in $NS; do n=$((n+1)); res "nvme ns$n: $(blockdev --getsize64 $D) bytes, $(blockdev --getss $D)-byte blocks"; done
  D=/dev/nvme0n1
  if pattern $D 8 nvme-tcp; then res "nvme pattern verified"; else res "FAIL nvme pattern"; rc=1; fi
  if discard $D 16; then res "nvme deallocate reads back zeroes"; else res "FAIL nvme deallocate"; rc=1; fi
  if discard $D 17 -z; then res "nvme write zeroes reads back zeroes"; else res "FAIL nvme write zeroes"; rc=1; fi
  fiov nvme $NS
  # The host stops the target and starts it again on the same port (same bdev UUIDs): the
  # connection drops, the kernel reconnects on its own, and the namespaces stay.
  res "CUE restart nvmf"
  if until_ 120 sh -c "dmesg | grep -q 'nvme0: Successfully reconnected'" && until_ 30 grep -qx live $C/state; then
    res "nvme reconnected after the restart: state=$(cat $C/state)"
    fiov "nvme after restart" $NS
  else res "FAIL nvme reconnect: state=$(cat $C/state) $(dmesg | grep nvme0 | tail -3 | tr '\n' ' ')"; rc=1; fi
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
# lun TARGET LUN: the disk of LUN in the target's session, once it appeared.
lun() {
  i=0
  while [ $i -lt 300 ]; do
    d=$($A -m session -P 3 2>/dev/null | awk -v t="$1" -v l="$2" '/^Target: / { on = ($2 == t) }
      on && /Lun: / { cur = $NF } on && /Attached scsi disk/ && cur == l { print "/dev/" $4; exit }')
    [ -n "$d" ] && [ -b "$d" ] && { echo $d; return 0; }
    sleep 0.1; i=$((i+1))
  done
  return 1
}
sid() { $A -m session | sed -n "s/.*\[\([0-9]*\)\].*$1 .*/\1/p"; }
for n in disk1 disk2 disk3; do $A -m node -o new -T $BASE:$n -p $P > /dev/null; done
set_ $BASE:disk1 'node.conn[0].iscsi.HeaderDigest' CRC32C
set_ $BASE:disk1 'node.conn[0].iscsi.DataDigest' CRC32C
# Session recovery: after a lost connection iscsid logs in again; I/O waits up to a minute for it.
set_ $BASE:disk1 node.session.timeo.replacement_timeout 60
if login $BASE:disk1 && L=$(lun $BASE:disk1 0) && L1=$(lun $BASE:disk1 1); then
  SID=$(sid $BASE:disk1)
  $A -m session -r $SID -P 2 > /tmp/sess 2>&1
  res "iscsi disk1: digests $(sed -n 's/.*HeaderDigest: //p' /tmp/sess)/$(sed -n 's/.*DataDigest: //p' /tmp/sess)"
  res "iscsi disk1 LUN 0: $(blockdev --getsize64 $L) bytes, $(blockdev --getss $L)-byte blocks"
  res "iscsi disk1 LUN 1: $(blockdev --getsize64 $L1) bytes, $(blockdev --getss $L1)-byte blocks"
  if pattern $L 8 iscsi && pattern $L1 8 iscsi-lun1; then res "iscsi pattern verified"; else res "FAIL iscsi pattern"; rc=1; fi
  if discard $L 16; then res "iscsi unmap reads back zeroes"; else res "FAIL iscsi unmap"; rc=1; fi
  fiov iscsi $L $L1
  res "CUE restart iscsi"
  S=/sys/class/iscsi_session/session$SID/state
  if until_ 120 sh -c "dmesg | grep -q 'connection$SID:0: detected conn error'" && until_ 120 grep -qx LOGGED_IN $S; then
    res "iscsi session recovered after the restart: $(cat $S)"
    fiov "iscsi after restart" $L $L1
  else res "FAIL iscsi recovery: $(cat $S) $(tail -3 /tmp/iscsid.log | tr '\n' ' ')"; rc=1; fi
else res "FAIL iscsi login disk1: $(tr '\n' ' ' < /tmp/login) $(tail -3 /tmp/iscsid.log | tr '\n' ' ')"; rc=1; fi

# CHAP (one-way) on disk2: a wrong secret first, which the target must refuse.
set_ $BASE:disk2 node.session.auth.authmethod CHAP
set_ $BASE:disk2 node.session.auth.username guestuser
set_ $BASE:disk2 node.session.auth.password wrongsecret99
if login $BASE:disk2; then res "FAIL iscsi disk2 accepted a wrong CHAP secret"; rc=1
else res "iscsi wrong CHAP secret refused"; fi
set_ $BASE:disk2 node.session.auth.password guestsecret12
if login $BASE:disk2 && L2=$(lun $BASE:disk2 0) && pattern $L2 0 chap; then res "iscsi CHAP login, pattern verified"
else res "FAIL iscsi CHAP: $(tr '\n' ' ' < /tmp/login)"; rc=1; fi

# Mutual CHAP on disk3: the target refuses an initiator that does not ask it to authenticate
# itself; the initiator refuses a target whose answer was not made with the secret it expects
# (password_in); with the right one both sides are satisfied.
set_ $BASE:disk3 node.session.auth.authmethod CHAP
set_ $BASE:disk3 node.session.auth.username mutualuser
set_ $BASE:disk3 node.session.auth.password mutualsecret1
if login $BASE:disk3; then res "FAIL iscsi disk3 admitted one-way CHAP"; rc=1
else res "iscsi one-way CHAP refused where mutual is required"; fi
set_ $BASE:disk3 node.session.auth.username_in targetuser
set_ $BASE:disk3 node.session.auth.password_in wrongtarget99
if login $BASE:disk3; then res "FAIL iscsi disk3: the initiator accepted a target with the wrong secret"; rc=1
else res "iscsi target with the wrong mutual secret refused"; fi
set_ $BASE:disk3 node.session.auth.password_in targetsecret1
if login $BASE:disk3 && L3=$(lun $BASE:disk3 0) && pattern $L3 0 mutual; then res "iscsi mutual CHAP login, pattern verified"
else res "FAIL iscsi mutual CHAP: $(tr '\n' ' ' < /tmp/login)"; rc=1; fi
res "iscsi sessions: $($A -m session 2>/dev/null | wc -l)"
$A -m node --logoutall=all > /dev/null 2>&1 && res "iscsi logged out" || { res "FAIL iscsi logout"; rc=1; }

dmesg | grep -iE '(nvme|iscsi|connection).*(error|fail|digest|timeout)' | tail -5 | while read -r l; do res "dmesg: $l"; done
exit $rc
