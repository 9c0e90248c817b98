// storkit's NVMe/TCP host against a target it did not write: SPDK v24.01's spdk_tgt (one process
// for the whole file: its start-up takes seconds). Identify is compared field by field with what
// SPDK's own spdk_nvme_identify reads from the same controller; I/O is verified against a model on
// node:net and native socket-group qpairs, with digests off and on, through in-capsule data, R2T
// and several C2HData PDUs per read; then the rarer commands, discovery and a reset under I/O.

import { randomBytes } from 'node:crypto';
import { ACCEL_OPC, accelFinish, accelGetIoChannel, accelStartDefault, accelStarted } from '@storkit/accel';
import {
  bdevAbort,
  bdevClose,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevRead,
  bdevReset,
  bdevWrite,
  IoStatus,
} from '@storkit/bdev';
import { bytesToUuid, DISCOVERY_NQN, GenericStatus, makeStatus, Sct } from '@storkit/nvme-spec';
import { createTestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { bdevNvmeAttachController, bdevNvmeDetachController } from '../src/bdev/nvme-bdev.js';

import { type Completion, discover, type HostQpair, NvmeController } from '../src/index.js';
import { freePort, type SpdkTgt, spdkTool, startSpdkTgt } from '../src/testing/spdk.js';
import { io } from './helpers.js';

/** How long one command may take before the target counts as stuck. */
const IO_SECONDS = 20;
const NQN = 'nqn.2016-06.io.spdk:cnode1';
const UUID0 = '6f1c2b3a-4d5e-4f60-8a71-92b3c4d5e6f7';
const NS = [
  { nsid: 1, blockSize: 512, blocks: 32768 },
  { nsid: 2, blockSize: 4096, blocks: 4096 },
];

/** Many writes and reads in flight at once against a model of the namespace. */
async function verifiedLoad(
  qp: HostQpair,
  ns: (typeof NS)[number],
  model: Uint8Array,
  rounds: number,
): Promise<void> {
  const bs = ns.blockSize;
  const maxBlocks = Math.min(131072 / bs, ns.blocks);
  let inflight = 0;
  let failures = 0;
  const mismatches: string[] = [];
  for (let k = 0; k < rounds; k++) {
    const n = 1 + Math.floor(Math.random() * maxBlocks);
    const lba = Math.floor(Math.random() * (ns.blocks - n));
    if (k % 2 === 0) {
      const data = randomBytes(n * bs);
      model.set(data, lba * bs);
      const written: Completion<null> = (_c, st) => {
        inflight--;
        if (st) failures++;
      };
      while (!qp.write(ns.nsid, lba, n, data, written, null)) {
        await new Promise((r) => setImmediate(r));
        qp.processCompletions();
      }
    } else {
      // The model at submission: no write in flight overlaps a read of the same round trip below.
      while (inflight > 0) {
        await new Promise((r) => setImmediate(r));
        qp.processCompletions();
      }
      const want = model.slice(lba * bs, (lba + n) * bs);
      const buf = new Uint8Array(n * bs);
      const ok = qp.read(
        ns.nsid,
        lba,
        n,
        buf,
        (_c, st) => {
          inflight--;
          if (st) failures++;
          else if (Buffer.compare(buf, want) !== 0) mismatches.push(`nsid ${ns.nsid} lba ${lba} n ${n}`);
        },
        null,
      );
      expect(ok).to.equal(true);
    }
    inflight++;
    if (inflight >= 16)
      while (inflight >= 8) {
        await new Promise((r) => setImmediate(r));
        qp.processCompletions();
      }
  }
  while (inflight > 0) {
    await new Promise((r) => setImmediate(r));
    qp.processCompletions();
  }
  expect(failures).to.equal(0);
  expect(mismatches).to.deep.equal([]);
}

/** The value after `label:` in SPDK identify output. */
function field(out: string, label: string): string {
  const m = new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\s*(.*)$`, 'm').exec(out);
  if (!m) throw new Error(`spdk_nvme_identify printed no '${label}'`);
  return m[1].trim();
}

describe('nvme host against SPDK spdk_tgt', function () {
  this.timeout(300_000);
  let tgt: SpdkTgt;
  let port: number;
  let trid: string;
  const models = NS.map((n) => new Uint8Array(n.blocks * n.blockSize));

  before(async () => {
    port = await freePort();
    trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
    const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
    tgt = await startSpdkTgt({
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_malloc_create',
              params: { name: 'Malloc0', num_blocks: 32768, block_size: 512, uuid: UUID0 },
            },
            { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 4096, block_size: 4096 } },
            { method: 'bdev_malloc_create', params: { name: 'Malloc2', num_blocks: 2048, block_size: 512 } },
            // Reads that take 5 s: something to abort.
            {
              method: 'bdev_delay_create',
              params: {
                base_bdev_name: 'Malloc2',
                name: 'Delay0',
                avg_read_latency: 5_000_000,
                p99_read_latency: 5_000_000,
                avg_write_latency: 0,
                p99_write_latency: 0,
              },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            {
              method: 'nvmf_create_subsystem',
              params: {
                nqn: NQN,
                allow_any_host: true,
                serial_number: 'SPDK00000000000001',
                model_number: 'SPDK bdev Controller',
              },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 2, bdev_name: 'Malloc1' } },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 3, bdev_name: 'Delay0' } },
            },
            { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listen } },
            { method: 'nvmf_subsystem_add_listener', params: { nqn: DISCOVERY_NQN, listen_address: listen } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await tgt?.stop();
  });

  it('identifies the controller and its namespaces as SPDK spdk_nvme_identify does', async () => {
    const spdk = await spdkTool('spdk_nvme_identify', ['-r', trid]);
    expect(spdk.code, spdk.out).to.equal(0);
    const c = await NvmeController.connect(trid);
    try {
      const d = c.cdata;
      expect(d.vid.toString(16).padStart(4, '0')).to.equal(field(spdk.out, 'Vendor ID'));
      expect(d.serialNumber).to.equal(field(spdk.out, 'Serial Number'));
      expect(d.modelNumber).to.equal(field(spdk.out, 'Model Number'));
      expect(d.firmwareRevision).to.equal(field(spdk.out, 'Firmware Version'));
      expect(String(c.maxTransferSize)).to.equal(field(spdk.out, 'Max Data Transfer Size'));
      expect(c.version).to.equal(field(spdk.out, 'NVMe Specification Version (VS)'));
      expect(String(c.maxQueueEntries)).to.equal(field(spdk.out, 'Maximum Queue Entries'));
      expect(String(d.nn)).to.equal(field(spdk.out, 'Number of Namespaces'));
      expect(String(d.aerLimit)).to.equal(field(spdk.out, 'Async Event Request Limit'));
      expect(String(d.abortLimit)).to.equal(field(spdk.out, 'Abort Command Limit'));
      expect(d.subnqn).to.equal(field(spdk.out, 'Subsystem NQN'));
      expect(`${d.kas * 100} ms`).to.equal(field(spdk.out, 'Keep Alive Granularity'));
      expect(d.fuses & 1 ? 'Supported' : 'Not Supported').to.equal(field(spdk.out, 'Fused Compare & Write'));
      expect(await c.activeNamespaces()).to.deep.equal([1, 2, 3]);
      for (const n of NS) {
        const id = await c.identifyNamespace(n.nsid);
        expect(id.blockSize).to.equal(n.blockSize);
        expect(id.nsze).to.equal(n.blocks);
        const sec = spdk.out.slice(spdk.out.indexOf(`Namespace ID:${n.nsid}`));
        expect(String(id.nsze)).to.equal(field(sec, 'Size (in LBAs)').split(' ')[0]);
        expect(String(id.blockSize)).to.equal(/LBA Format #00: Data Size:\s+(\d+)/.exec(sec)?.[1]);
      }
      const desc = await c.namespaceDescriptors(1);
      expect(bytesToUuid(desc.uuid!)).to.equal(UUID0);
      expect(field(spdk.out.slice(spdk.out.indexOf('Namespace ID:1')), 'UUID')).to.equal(UUID0);
    } finally {
      await c.close();
    }
  });

  for (const [hdgst, ddgst] of [
    [false, false],
    [true, true],
  ] as const)
    it(`keeps data intact on node:net and native qpairs (hdgst=${hdgst} ddgst=${ddgst})`, async () => {
      const c = await NvmeController.connect(trid, { hdgst, ddgst });
      try {
        const qps = [
          await c.allocIoQpair({ depth: 32 }),
          await c.allocIoQpair({ depth: 32, socket: 'native' }),
        ];
        expect(qps.map((q) => q.needsEventLoop)).to.deep.equal([true, false]);
        await Promise.all(
          qps.flatMap((qp, i) =>
            NS.map((ns, j) => (i === j ? verifiedLoad(qp, ns, models[j], 300) : Promise.resolve())),
          ),
        );
        // Each qpair reads back what the other wrote.
        for (const [i, ns] of NS.entries()) {
          const qp = qps[1 - i];
          const buf = new Uint8Array(32 * ns.blockSize);
          for (let lba = 0; lba + 32 <= ns.blocks; lba += Math.floor(ns.blocks / 7)) {
            expect(await io(qp, (cb, d) => qp.read(ns.nsid, lba, 32, buf, cb, d), IO_SECONDS)).to.equal(0);
            expect(
              Buffer.compare(buf, models[i].subarray(lba * ns.blockSize, (lba + 32) * ns.blockSize)),
            ).to.equal(0);
          }
        }
      } finally {
        await c.close();
      }
    });

  it('write zeroes, deallocate, flush, compare and fused compare-and-write as SPDK answers them', async () => {
    const c = await NvmeController.connect(trid);
    try {
      const qp = await c.allocIoQpair({ depth: 16, socket: 'native' });
      const bs = 512;
      const data = randomBytes(8 * bs);
      expect(await io(qp, (cb, d) => qp.write(1, 100, 8, data, cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.compare(1, 100, 8, data, cb, d), IO_SECONDS)).to.equal(0);
      const other = randomBytes(8 * bs);
      // A miscompare is refused (SPDK's malloc bdev answers Generic/Internal Device Error, not
      // Media/Compare Failure), and a fused compare-and-write that miscompares writes nothing.
      expect(await io(qp, (cb, d) => qp.compare(1, 100, 8, other, cb, d), IO_SECONDS)).to.not.equal(0);
      const first = other.subarray(0, bs);
      expect(
        await io(qp, (cb, d) => qp.compareAndWrite(1, 100, 1, first, first, cb, d), IO_SECONDS),
      ).to.not.equal(0);
      expect(
        await io(
          qp,
          (cb, d) => qp.compareAndWrite(1, 100, 1, data.subarray(0, bs), first, cb, d),
          IO_SECONDS,
        ),
      ).to.equal(0);
      const back = new Uint8Array(8 * bs);
      expect(await io(qp, (cb, d) => qp.read(1, 100, 8, back, cb, d), IO_SECONDS)).to.equal(0);
      expect(Buffer.compare(back.subarray(0, bs), other.subarray(0, bs))).to.equal(0);
      expect(Buffer.compare(back.subarray(bs), data.subarray(bs))).to.equal(0);
      expect(await io(qp, (cb, d) => qp.writeZeroes(1, 100, 4, cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.deallocate(1, [[104, 4]], cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.flush(1, cb, d), IO_SECONDS)).to.equal(0);
      expect(await io(qp, (cb, d) => qp.read(1, 100, 8, back, cb, d), IO_SECONDS)).to.equal(0);
      expect(back.every((b) => b === 0)).to.equal(true);
      models[0].fill(0, 100 * bs, 108 * bs);
      // Out of range: SPDK's status, carried back as is.
      const st = await io(
        qp,
        (cb, d) => qp.read(1, NS[0].blocks, 1, back.subarray(0, bs), cb, d),
        IO_SECONDS,
      );
      expect(st & 0x7ff).to.equal(makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange));
    } finally {
      await c.close();
    }
  });

  it("reads SPDK's discovery log", async () => {
    const entries = await discover(`trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port}`);
    const e = entries.find((x) => x.subnqn === NQN);
    expect(e, JSON.stringify(entries)).to.not.equal(undefined);
    expect(e!.traddr).to.equal('127.0.0.1');
    expect(e!.trsvcid).to.equal(String(port));
  });

  it('resets the controller under I/O: the qpair reconnects in place and serves verified I/O again', async () => {
    const c = await NvmeController.connect(trid);
    try {
      const qp = await c.allocIoQpair({ depth: 32, socket: 'native' });
      const cntlid = c.cntlid;
      const load = verifiedLoad(qp, NS[0], models[0], 100).catch(() => {});
      await c.reset();
      // Commands cut off by the reset complete with ABORTED - SQ DELETION (failures of that load).
      await load;
      expect(c.resets).to.equal(1);
      expect(c.cntlid).to.not.equal(cntlid);
      expect(qp.connected).to.equal(true);
      // Writes cut off may or may not have reached the namespace: write the model out again.
      const bs = NS[0].blockSize;
      for (let lba = 0; lba < NS[0].blocks; lba += 256) {
        const chunk = models[0].subarray(lba * bs, (lba + 256) * bs);
        expect(await io(qp, (cb, d) => qp.write(1, lba, 256, chunk, cb, d), IO_SECONDS)).to.equal(0);
      }
      await verifiedLoad(qp, NS[0], models[0], 200);
    } finally {
      await c.close();
    }
  });

  // The nvme bdev module on SPDK's controller: bdev abort becomes an NVMe Abort that SPDK carries
  // out on its delay bdev (the read completes as aborted), and bdev reset resets the controller.
  it('nvme bdev: abort reaches SPDK (a slow read comes back aborted), reset reconnects', async () => {
    const h = createTestHarness({ reactors: 1 });
    let pumping = true;
    const pump = (): void => {
      if (!pumping) return;
      h.pollOnce();
      setImmediate(pump);
    };
    setImmediate(pump);
    const until = async (pred: () => boolean): Promise<void> => {
      const end = Date.now() + 20_000;
      while (!pred()) {
        if (Date.now() > end) throw new Error('condition not met within 20 s');
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    try {
      h.setThread(0);
      const { names } = await bdevNvmeAttachController({
        name: 'Spdk0',
        trtype: 'tcp',
        adrfam: 'IPv4',
        traddr: '127.0.0.1',
        trsvcid: String(port),
        subnqn: NQN,
      });
      expect(names).to.deep.equal(['Spdk0n1', 'Spdk0n2', 'Spdk0n3']);
      h.setThread(0);
      const desc = bdevOpenExt('Spdk0n3', true, () => {});
      const ch = bdevGetIoChannel(desc);
      const tag = { read: true };
      let read: IoStatus | null = null;
      let abort: IoStatus | null = null;
      expect(bdevRead(desc, ch, new Uint8Array(512), 0, 1, (s) => (read = s), tag)).to.equal(0);
      await new Promise((r) => setTimeout(r, 300)); // at SPDK, inside its delay bdev
      h.setThread(0);
      expect(bdevAbort(desc, ch, tag, (s) => (abort = s), null)).to.equal(0);
      await until(() => read !== null && abort !== null);
      expect([abort, read]).to.deep.equal([IoStatus.SUCCESS, IoStatus.ABORTED]);
      let reset: IoStatus | null = null;
      h.setThread(0);
      expect(bdevReset(desc, ch, (s) => (reset = s), null)).to.equal(0);
      await until(() => reset !== null);
      expect(reset).to.equal(IoStatus.SUCCESS);
      h.setThread(0);
      ch.put();
      bdevClose(desc);
      let detached: Error | null | undefined;
      bdevNvmeDetachController({ name: 'Spdk0' }, (e) => (detached = e));
      await until(() => detached !== undefined);
      expect(detached).to.equal(null);
    } finally {
      pumping = false;
      h.pollThreads();
      h.close();
    }
  });
  // The nvme bdev module's qpairs take the thread's accel channel for their data digests: each
  // one sent and received is counted there; SPDK checks the ones it receives.
  it('nvme bdev: data digests through the accel framework, SPDK checks every one', async () => {
    const h = createTestHarness({ reactors: 1 });
    let pumping = true;
    const pump = (): void => {
      if (!pumping) return;
      h.pollOnce();
      setImmediate(pump);
    };
    setImmediate(pump);
    const until = async (pred: () => boolean): Promise<void> => {
      const end = Date.now() + 20_000;
      while (!pred()) {
        if (Date.now() > end) throw new Error('condition not met within 20 s');
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    h.setThread(0);
    const startedHere = !accelStarted();
    if (startedHere) accelStartDefault();
    const accel = accelGetIoChannel();
    try {
      h.setThread(0);
      await bdevNvmeAttachController({
        name: 'Spdk1',
        trtype: 'tcp',
        adrfam: 'IPv4',
        traddr: '127.0.0.1',
        trsvcid: String(port),
        subnqn: NQN,
        ddgst: true,
      });
      h.setThread(0);
      const before = accel.ctx.stats.executed[ACCEL_OPC.CRC32C];
      const desc = bdevOpenExt('Spdk1n1', true, () => {});
      const ch = bdevGetIoChannel(desc);
      // 4 KiB in the capsule, 128 KiB through R2T; read back as C2HData.
      for (const blocks of [8, 256]) {
        const data = randomBytes(blocks * 512);
        const back = new Uint8Array(blocks * 512);
        let st: IoStatus | null = null;
        h.setThread(0);
        expect(bdevWrite(desc, ch, data, 1000, blocks, (s) => (st = s), null)).to.equal(0);
        await until(() => st !== null);
        expect(st).to.equal(IoStatus.SUCCESS);
        st = null;
        h.setThread(0);
        expect(bdevRead(desc, ch, back, 1000, blocks, (s) => (st = s), null)).to.equal(0);
        await until(() => st !== null);
        expect(st).to.equal(IoStatus.SUCCESS);
        expect(Buffer.compare(back, data)).to.equal(0);
        models[0].set(data, 1000 * 512);
      }
      expect(accel.ctx.stats.executed[ACCEL_OPC.CRC32C] - before).to.be.at.least(4);
      h.setThread(0);
      ch.put();
      bdevClose(desc);
      let detached: Error | null | undefined;
      bdevNvmeDetachController({ name: 'Spdk1' }, (e) => (detached = e));
      await until(() => detached !== undefined);
      expect(detached).to.equal(null);
    } finally {
      h.setThread(0);
      accel.put();
      if (startedHere) {
        let done = false;
        void accelFinish().then(() => (done = true));
        await until(() => done);
      }
      pumping = false;
      h.pollThreads();
      h.close();
    }
  });
});
