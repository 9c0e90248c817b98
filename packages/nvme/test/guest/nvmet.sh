# Workload of kernel-target.test.ts: the Linux kernel's NVMe/TCP target (nvmet, nvmet-tcp) set up
# through configfs on 10.0.2.15:4420 (the host reaches it through QEMU's hostfwd): one subsystem,
# two namespaces on memory-backed null_blk devices (1 GiB, 512-byte blocks, discard: what write
# zeroes and deallocate need) with the UUIDs and serial the command line gives. Prints READY, then
# serves until the host writes a line on the console; fails if the kernel logged a warning or oops.
res() { echo "GUEST-RESULT: $*"; }
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
NQN=$(arg nqn)
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config || { res "FAIL configfs"; exit 1; }
T=/sys/kernel/config/nvmet
[ -d $T ] || { res "FAIL no nvmet in configfs"; exit 1; }
S=$T/subsystems/$NQN
mkdir $S || { res "FAIL subsystem"; exit 1; }
echo 1 > $S/attr_allow_any_host
echo "$(arg serial)" > $S/attr_serial
# /init loaded null_blk with its defaults; again with memory behind it.
rmmod null_blk 2>/dev/null
insmod /lib/modules/null_blk.ko nr_devices=2 memory_backed=1 discard=1 gb=1 bs=512 || { res "FAIL null_blk"; exit 1; }
for n in 1 2; do
  mkdir $S/namespaces/$n
  echo -n /dev/nullb$((n - 1)) > $S/namespaces/$n/device_path
  echo "$(arg uuid$n)" > $S/namespaces/$n/device_uuid
  echo 1 > $S/namespaces/$n/enable || { res "FAIL namespace $n"; exit 1; }
done
P=$T/ports/1
mkdir $P
echo tcp > $P/addr_trtype; echo ipv4 > $P/addr_adrfam
echo 10.0.2.15 > $P/addr_traddr; echo 4420 > $P/addr_trsvcid
ln -s $S $P/subsystems/$NQN || { res "FAIL port"; exit 1; }
res "READY $(uname -r)"
read line
res "host says: $line"
# A kernel warning or oops while serving fails the test (its trace goes to the console).
if dmesg | grep -qE 'WARNING:|BUG:|Oops|Call Trace'; then dmesg | tail -60; res "FAIL kernel trace"; exit 1; fi
dmesg | grep -E 'nvmet' | tail -20
exit 0
