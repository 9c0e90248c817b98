// storkit's NVMe/TCP host against the Linux kernel's target (nvmet, nvmet-tcp), which it did not
// write: one QEMU (TCG) guest boot serves every check, the guest's target reached through QEMU's
// user network (hostfwd to 10.0.2.15:4420). Identify, namespace UUIDs, verified I/O on node:net and
// native qpairs with digests off and on, write zeroes and deallocate read back, the discovery log,
// a controller reset under I/O. Peers: qemu-system-x86, linux-image-amd64, busybox-static, kmod
// (.ci/run installs them).

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { bytesToUuid, Oncs } from '@storkit/nvme-spec';
import { expect } from 'chai';

import { discover, type HostQpair, NvmeController, type TcpHostQpair } from '../src/index.js';
import { freePort } from '../src/testing/spdk.js';
import { io } from './helpers.js';

/** How long one command may take before the target counts as stuck (a TCG guest is slow). */
const IO_SECONDS = 60;
const HERE = fileURLToPath(new URL('../../test/guest/', import.meta.url));
const NQN = 'nqn.2016-06.io.storkit:kernel-target';
const SERIAL = 'a1b2c3d4e5f60718';
const UUIDS = ['4a1d2c3b-5e6f-4a70-8b91-a2b3c4d5e6f7', '5b2e3d4c-6f70-4b81-9ca2-b3c4d5e6f708'];
/** The namespaces: memory-backed null_blk devices of 1 GiB, 512-byte blocks. */
const BS = 512;
const NSZE = (1 << 30) / BS;
/** The part the tests write (and model): 32 MiB. */
const BYTES = 32 << 20;
const BLOCKS = BYTES / BS;

interface Guest {
  qemu: ChildProcess;
  log: string[];
  /** Resolves with the guest's lines once it printed `GUEST-RESULT: END`. */
  ended: Promise<string[]>;
}

/** Boot the guest; resolve once its target is listening (READY). */
async function bootGuest(port: number, dir: string): Promise<Guest> {
  for (const p of ['qemu-system-x86_64', 'busybox', 'modinfo', 'cpio'])
    try {
      execFileSync('sh', ['-c', `command -v ${p}`]);
    } catch {
      throw new Error(
        `peer missing: ${p} (install qemu-system-x86 busybox-static kmod cpio, as .ci/run does)`,
      );
    }
  const kernels = readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-'));
  if (kernels.length === 0) throw new Error('peer missing: a kernel in /boot (linux-image-amd64)');
  const kernel = `/boot/${kernels.sort().at(-1)}`;
  const initrd = join(dir, 'initrd.cpio.gz');
  execFileSync('bash', [join(HERE, 'mkinitrd.sh'), initrd, join(HERE, 'nvmet.sh')], {
    // Digests need the kernel's crc32c (nothing autoloads it: there is no modprobe in the guest).
    env: { ...process.env, MODS: 'crc32c_generic null_blk nvmet nvmet-tcp' },
    stdio: 'inherit',
  });
  if (!existsSync(initrd)) throw new Error('initramfs was not built');
  const append = `console=ttyS0 quiet panic=-1 nqn=${NQN} serial=${SERIAL} uuid1=${UUIDS[0]} uuid2=${UUIDS[1]}`;
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-accel', 'tcg', '-nographic', '-no-reboot', '-m', '512', '-smp', '1'],
      ...['-kernel', kernel, '-initrd', initrd, '-append', append],
      ...[
        '-netdev',
        `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-10.0.2.15:4420`,
        '-device',
        'virtio-net-pci,netdev=n0',
      ],
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  let buf = '';
  let ready: (() => void) | null = null;
  let end: ((l: string[]) => void) | null = null;
  const ended = new Promise<string[]>((r) => (end = r));
  const onData = (d: Buffer): void => {
    buf += d.toString().replace(/\r/g, '');
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      log.push(line);
      if (line.includes('GUEST-RESULT: READY')) ready?.();
      if (line.includes('GUEST-RESULT: END')) end?.(log);
      i = buf.indexOf('\n');
    }
  };
  qemu.stdout!.on('data', onData);
  qemu.stderr!.on('data', onData);
  qemu.on('exit', () => end?.(log));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => fail(new Error('guest not ready within 240 s')), 240_000);
    const fail = (e: Error): void => {
      clearTimeout(t);
      qemu.kill('SIGKILL');
      reject(new Error(`${e.message}:\n${log.slice(-30).join('\n')}`));
    };
    qemu.on('exit', (c) => fail(new Error(`QEMU exited (${c}) before the guest was ready`)));
    ready = () => {
      clearTimeout(t);
      resolve();
    };
  });
  return { qemu, log, ended };
}

/** Random writes then reads (several in flight) against a model; every read compared. */
async function verified(
  qp: HostQpair,
  nsid: number,
  model: Uint8Array,
  rounds: number,
  maxBlocks: number,
): Promise<void> {
  let inflight = 0;
  const problems: string[] = [];
  const wait = async (below: number): Promise<void> => {
    const until = Date.now() + 60_000;
    while (inflight > below) {
      if (Date.now() > until) throw new Error('I/O stuck for 60 s');
      await new Promise((r) => setImmediate(r));
      qp.processCompletions();
    }
  };
  for (let k = 0; k < rounds; k++) {
    const n = 1 + Math.floor(Math.random() * maxBlocks);
    const lba = Math.floor(Math.random() * (BLOCKS - n));
    const data = randomBytes(n * BS);
    model.set(data, lba * BS);
    inflight++;
    expect(
      qp.write(
        nsid,
        lba,
        n,
        data,
        (_c, st) => {
          inflight--;
          if (st) problems.push(`write status ${st}`);
        },
        null,
      ),
    ).to.equal(true);
    await wait(8);
  }
  await wait(0);
  for (let k = 0; k < rounds; k++) {
    const n = 1 + Math.floor(Math.random() * maxBlocks);
    const lba = Math.floor(Math.random() * (BLOCKS - n));
    const want = model.slice(lba * BS, (lba + n) * BS);
    const buf = new Uint8Array(n * BS);
    inflight++;
    expect(
      qp.read(
        nsid,
        lba,
        n,
        buf,
        (_c, st) => {
          inflight--;
          if (st) problems.push(`read status ${st}`);
          else if (Buffer.compare(buf, want) !== 0) problems.push(`nsid ${nsid} lba ${lba} n ${n} differs`);
        },
        null,
      ),
    ).to.equal(true);
    await wait(8);
  }
  await wait(0);
  expect(problems).to.deep.equal([]);
}

describe('nvme host against the Linux kernel nvmet-tcp target (QEMU guest)', function () {
  this.timeout(600_000);
  let dir: string;
  let guest: Guest;
  let trid: string;
  let port: number;
  const models = [new Uint8Array(BYTES), new Uint8Array(BYTES)];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-nvmet-'));
    port = await freePort();
    trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
    guest = await bootGuest(port, dir);
  });
  after(async () => {
    if (guest) {
      guest.qemu.stdin!.write('done\n');
      const lines = await Promise.race([
        guest.ended,
        new Promise<string[]>((r) => setTimeout(() => r([]), 30_000)),
      ]);
      guest.qemu.kill('SIGKILL');
      const results = lines.filter((l) => l.includes('GUEST-RESULT'));
      expect(
        results.filter((l) => /FAIL/.test(l)),
        lines.slice(-80).join('\n'),
      ).to.deep.equal([]);
      expect(
        results.some((l) => l.includes('END rc=0')),
        results.join('\n'),
      ).to.equal(true);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("identifies the kernel's controller and namespaces (serial, model, UUIDs from configfs)", async () => {
    const c = await NvmeController.connect(trid);
    try {
      expect(c.cdata.serialNumber).to.equal(SERIAL);
      expect(c.cdata.modelNumber).to.equal('Linux');
      expect(c.cdata.subnqn).to.equal(NQN);
      const kver = /GUEST-RESULT: READY (\S+)/.exec(guest.log.join('\n'))![1];
      expect(kver.startsWith(c.cdata.firmwareRevision.split('-')[0])).to.equal(true);
      expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
      for (const nsid of [1, 2]) {
        const id = await c.identifyNamespace(nsid);
        expect([id.nsze, id.blockSize]).to.deep.equal([NSZE, BS]);
        expect(bytesToUuid((await c.namespaceDescriptors(nsid)).uuid!)).to.equal(UUIDS[nsid - 1]);
      }
    } finally {
      await c.close();
    }
  });

  for (const digests of [false, true])
    it(`keeps data intact on node:net and native qpairs (digests ${digests ? 'on' : 'off'})`, async () => {
      const c = await NvmeController.connect(trid, { hdgst: digests, ddgst: digests });
      try {
        const node = (await c.allocIoQpair({ depth: 16 })) as TcpHostQpair;
        const native = (await c.allocIoQpair({ depth: 16, socket: 'native' })) as TcpHostQpair;
        // The kernel granted what was asked for (ICResp), on both connections.
        expect([node.hdgst, node.ddgst, native.hdgst, native.ddgst]).to.deep.equal(
          new Array(4).fill(digests),
        );
        // MDTS permitting, several data PDUs per command on both sides of a 64 KiB transfer.
        const max = Math.min(c.maxTransferSize, 65536) / BS;
        await Promise.all([verified(node, 1, models[0], 40, max), verified(native, 2, models[1], 40, max)]);
        // Each reads what the other wrote.
        const buf = new Uint8Array(64 * BS);
        for (const [qp, nsid] of [
          [node, 2],
          [native, 1],
        ] as const)
          for (let lba = 0; lba + 64 <= BLOCKS; lba += BLOCKS / 4) {
            expect(await io(qp, (cb, d) => qp.read(nsid, lba, 64, buf, cb, d), IO_SECONDS)).to.equal(0);
            expect(Buffer.compare(buf, models[nsid - 1].subarray(lba * BS, (lba + 64) * BS))).to.equal(0);
          }
      } finally {
        await c.close();
      }
    });

  it('write zeroes and deallocate read back as zeroes; flush; an LBA past the end is refused', async () => {
    const c = await NvmeController.connect(trid);
    try {
      const qp = await c.allocIoQpair({ depth: 8, socket: 'native' });
      expect(c.cdata.oncs & (Oncs.WriteZeroes | Oncs.Dsm)).to.equal(Oncs.WriteZeroes | Oncs.Dsm);
      const data = randomBytes(16 * BS);
      expect(await io(qp, (cb, d) => qp.write(1, 1000, 16, data, cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.writeZeroes(1, 1000, 8, cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.deallocate(1, [[1008, 8]], cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.flush(1, cb, d), IO_SECONDS)).to.equal(0);
      const back = new Uint8Array(16 * BS);
      expect(await io(qp, (cb, d) => qp.read(1, 1000, 16, back, cb, d), IO_SECONDS)).to.equal(0);
      expect(back.every((b) => b === 0)).to.equal(true);
      models[0].fill(0, 1000 * BS, 1016 * BS);
      // Past the end: refused (nvmet's block backend answers Internal Device Error, not SPDK's LBA
      // Out of Range: the block layer's EIO, mapped).
      const st = await io(qp, (cb, d) => qp.read(1, NSZE, 1, back.subarray(0, BS), cb, d), IO_SECONDS);
      expect(st).to.not.equal(0);
    } finally {
      await c.close();
    }
  });

  it("reads the kernel target's discovery log", async () => {
    const entries = await discover(`trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port}`);
    const e = entries.find((x) => x.subnqn === NQN);
    expect(e, JSON.stringify(entries)).to.not.equal(undefined);
    // The kernel reports its own address (the guest's), as seen inside the guest.
    expect([e!.traddr, e!.trsvcid]).to.deep.equal(['10.0.2.15', '4420']);
  });

  it('resets the controller under I/O and goes on with verified I/O', async () => {
    const c = await NvmeController.connect(trid);
    try {
      const qp = await c.allocIoQpair({ depth: 16, socket: 'native' });
      const cntlid = c.cntlid;
      const load = verified(qp, 1, models[0], 20, 128).catch(() => {});
      await c.reset();
      await load;
      expect(c.cntlid).to.not.equal(cntlid);
      expect(qp.connected).to.equal(true);
      // What the interrupted load wrote is unknown: write the model out again, then verify.
      for (let lba = 0; lba < BLOCKS; lba += 256) {
        const chunk = models[0].subarray(lba * BS, (lba + 256) * BS);
        expect(await io(qp, (cb, d) => qp.write(1, lba, 256, chunk, cb, d), IO_SECONDS)).to.equal(0);
      }
      await verified(qp, 1, models[0], 20, 128);
    } finally {
      await c.close();
    }
  });
});
