// iSCSI commands take their data buffers from the iobuf pool: eight sessions each keep 64 READs of
// 128 KiB in flight against a LUN whose reads complete only when the test lets them. Only as many
// commands as the pool has buffers reach the LUN; the rest wait, oldest first, and the process's
// ArrayBuffer memory grows by the pool plus a fixed cost per connection, not by 8 x 64 x 128 KiB
// (64 MiB, what per-command buffers grown to the largest transfer took before). Then every read
// completes with its data, and every buffer is back in the pool.
import { IobufPool, type IoCb, type IoVec, iobufOptions } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { IscsiTarget } from '../src/index.js';
import { TestInitiator, tick } from './initiator.js';

/** A RAM LUN whose reads complete only when released. */
class HeldReads extends RamBackend {
  readonly held: (() => void)[] = [];
  override readv<C>(iov: IoVec, off: number, n: number, cb: IoCb<C>, ctx: C): void {
    this.held.push(() => super.readv(iov, off, n, cb, ctx));
  }
}

const SESSIONS = 8;
const QD = 64;
const IO = 128 * 1024;
const BS = 512;

function read10(lba: number, blocks: number): number[] {
  return [
    0x28,
    0,
    lba >>> 24,
    (lba >>> 16) & 0xff,
    (lba >>> 8) & 0xff,
    lba & 0xff,
    0,
    blocks >>> 8,
    blocks & 0xff,
    0,
  ];
}

/** A target with one node, disk1, serving `lun` as LUN 0 from `pool`'s buffers. */
function serve(pool: IobufPool, lun: RamBackend, queueDepth: number): { target: IscsiTarget; node: string } {
  const target = new IscsiTarget(
    (n) => (n === lun.name ? lun : undefined),
    { nop_in_interval: 0 },
    undefined,
    pool,
  );
  target.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '3260' }] });
  target.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
  const node = target.createTargetNode({
    name: 'disk1',
    pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
    luns: [{ bdev_name: lun.name, lun_id: 0 }],
    queue_depth: queueDepth,
  });
  return { target, node: node.name };
}

/** A session logged in with immediate data and an 8 KiB first burst. */
function writer(target: IscsiTarget, node: string): TestInitiator {
  const ini = new TestInitiator(target);
  ini.loginNormal(node, [
    ['ImmediateData', 'Yes'],
    ['FirstBurstLength', '8192'],
  ]);
  ini.take();
  return ini;
}

describe('iscsi: command data buffers come from the iobuf pool', function () {
  this.timeout(60_000);

  it(`${SESSIONS} sessions x ${QD} READs of 128 KiB: memory within the pool, every read served`, async () => {
    const pool = new IobufPool(iobufOptions({ small_pool_count: 64, large_pool_count: 16 }));
    const lun = new HeldReads({ name: 'Held0', blockSize: BS, numBlocks: (16 << 20) / BS });
    for (let i = 0; i < lun.data.length; i += 4096) lun.data[i] = (i >>> 12) & 0xff;
    const { target, node } = serve(pool, lun, QD);
    const before = process.memoryUsage().arrayBuffers;
    const inits: TestInitiator[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const ini = new TestInitiator(target);
      ini.loginNormal(
        node,
        [
          ['MaxRecvDataSegmentLength', '262144'],
          ['MaxBurstLength', '262144'],
        ],
        s + 1,
      );
      ini.take();
      for (let i = 0; i < QD; i++)
        ini.scsi(read10(((s * QD + i) * (IO / BS)) % 30000, IO / BS), { read: IO });
      inits.push(ini);
    }
    await tick();
    const waits = inits.reduce((n, x) => n + x.conn.stats.bufferWaits, 0);
    expect(lun.held.length).to.equal(pool.large.count);
    expect(waits).to.equal(SESSIONS * QD - pool.large.count);
    expect(pool.bytesMade).to.be.at.most(pool.bytesMax);
    const grown = process.memoryUsage().arrayBuffers - before;
    // The pool (~2.6 MiB) plus each connection's fixed part, mostly its 2 MiB send arena: far
    // below the 64 MiB of buffers per command (on top of that) it took before.
    expect(grown, `ArrayBuffer growth ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.below(
      pool.bytesMax + SESSIONS * 2.5 * (1 << 20),
    );

    let reads = 0;
    for (let round = 0; round < 10_000 && reads < SESSIONS * QD; round++) {
      for (const f of lun.held.splice(0)) f();
      await tick();
      for (const ini of inits)
        for (const g of ini.take()) {
          // Data-In with the status collapsed into its last PDU: one per 128 KiB read here.
          if (g.opcode === 0x25 && (g.flags & 0x01) !== 0) {
            expect(g.bhs[3]).to.equal(0);
            const off = g.u32(40);
            expect(off + g.data.length).to.equal(IO);
            reads++;
          }
        }
    }
    expect(reads).to.equal(SESSIONS * QD);
    expect(target.iobuf.inUse).to.equal(0);
    expect(target.iobuf.waiting).to.equal(0);
  });

  it('a write waiting for a buffer keeps its immediate data; a dropped connection gives buffers back', async () => {
    const pool = new IobufPool(
      iobufOptions({ small_pool_count: 64, large_pool_count: 8, large_bufsize: 65536 }),
    );
    const lun = new RamBackend({ name: 'W0', blockSize: BS, numBlocks: 4096 });
    const { target, node } = serve(pool, lun, 32);
    const ini = writer(target, node);
    // 10 writes of 64 KiB with 8 KiB of immediate data each: 8 take a buffer (R2T), 2 wait.
    const data = new Uint8Array(65536).fill(0x77);
    for (let i = 0; i < 10; i++)
      ini.scsi([0x2a, 0, 0, 0, (i * 128) >>> 8, (i * 128) & 0xff, 0, 0, 128, 0], {
        write: data,
        immediate: 8192,
      });
    expect(target.iobuf.inUse).to.equal(8);
    expect(target.iobuf.waiting).to.equal(2);
    expect(ini.conn.stats.bufferWaits).to.equal(2);
    ini.conn.drop('test');
    expect(target.iobuf.inUse).to.equal(0);
    expect(target.iobuf.waiting).to.equal(0);
  });

  it('writes that waited for a buffer resume in order with their immediate data and write what was sent', async () => {
    const pool = new IobufPool(
      iobufOptions({ small_pool_count: 64, large_pool_count: 8, large_bufsize: 65536 }),
    );
    const lun = new RamBackend({ name: 'W1', blockSize: BS, numBlocks: 4096 });
    const { target, node } = serve(pool, lun, 32);
    const ini = writer(target, node);
    const N = 20;
    const payload = (i: number) => new Uint8Array(65536).fill(i + 1);
    const firstItt = ini.itt;
    for (let i = 0; i < N; i++)
      ini.scsi([0x2a, 0, 0, 0, (i * 128) >>> 8, (i * 128) & 0xff, 0, 0, 128, 0], {
        write: payload(i),
        immediate: 8192,
      });
    let good = 0;
    for (let round = 0; round < 1000 && good < N; round++) {
      for (const g of ini.take()) {
        if (g.opcode === 0x31) {
          // R2T: send what it asks for, from the command's own payload.
          const i = g.u32(16) - firstItt;
          const off = g.u32(40);
          const len = g.u32(44);
          ini.dataOut(g.u32(16), g.u32(20), 0, off, payload(i).subarray(off, off + len), true);
        } else if (g.opcode === 0x21 && g.bhs[3] === 0) good++;
      }
      await tick();
    }
    expect(good).to.equal(N);
    expect(ini.conn.stats.bufferWaits).to.equal(N - 8);
    for (let i = 0; i < N; i++)
      expect(lun.data.subarray(i * 65536, (i + 1) * 65536).every((b) => b === i + 1)).to.equal(true);
    expect(target.iobuf.inUse).to.equal(0);
  });
});
