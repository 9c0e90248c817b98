// Target memory is bounded by the iobuf pool. Sixteen hosts each keep 127 writes of 128 KiB in
// flight (R2T then H2CData) against a namespace whose writes do not complete until the test lets
// them: only as many commands as the pool has buffers get theirs, the rest wait in the poll
// group's queue, and the process's ArrayBuffer memory grows by the pool's size plus a fixed cost
// per connection, not by 16 x 127 x 128 KiB (~254 MiB, what per-request buffers grown to the
// largest transfer cost before). Letting the writes complete serves every waiting command, oldest
// first, and every buffer goes back to the pool.
import { IobufPool, type IoCb, type IoVec, iobufOptions } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { CH_SIZE, cqeStatus, DataOff, HLEN, PduType, writeU64 } from '@storkit/nvme-spec';
import { expect } from 'chai';

import { NvmfTarget } from '../src/target.js';
import type { TcpQpair } from '../src/tcp-qpair.js';
import { base, capsule, connected, h2c, local, NQN, tick } from './engine-helpers.js';

/** A RAM namespace whose writes complete only when released. */
class HeldWrites extends RamBackend {
  readonly held: (() => void)[] = [];
  override writev<C>(iov: IoVec, off: number, n: number, cb: IoCb<C>, ctx: C): void {
    this.held.push(() => super.writev(iov, off, n, cb, ctx));
  }
}

const HOSTS = 16;
const QD = 127;
const IO = 128 * 1024;
const BS = 512;

describe('nvmf: target memory is bounded by the iobuf pool', function () {
  this.timeout(60_000);

  it(`${HOSTS} connections x QD ${QD} x 128 KiB writes: memory within the pool, every command served`, async () => {
    const pool = new IobufPool(iobufOptions({ small_pool_count: 64, large_pool_count: 24 }));
    const tgt = new NvmfTarget({ iobuf: pool });
    tgt.nvmf_create_transport({ trtype: 'TCP', max_queue_depth: 128, buf_cache_size: 4 });
    const ns = new HeldWrites({ name: 'Held0', blockSize: BS, numBlocks: (64 << 20) / BS });
    tgt.registerBackend(ns);
    tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
    tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Held0' } });
    tgt.subsystems.get(NQN)!.listeners.push({ trtype: 'TCP', adrfam: 'IPv4', ...local });

    // One H2CData PDU per R2T, its header rewritten for each (no 128 KiB array per command).
    const data = h2c(0, 0, 0, IO, IO);
    data.fill(0x5a, HLEN.H2CData);
    const ddv = new DataView(data.buffer);
    const hosts: { qp: TcpQpair; statuses: number[] }[] = [];
    const before = process.memoryUsage().arrayBuffers;
    for (let h = 0; h < HOSTS; h++) {
      const { io } = await connected(tgt);
      const statuses: number[] = [];
      // Answer each R2T from the sink, as a host would: the whole transfer in one H2CData.
      const qp = io.qp;
      const sink = (b: Uint8Array): void => {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let o = 0; o < b.length; o += dv.getUint32(o + 4, true)) {
          if (b[o] === PduType.CapsuleResp) statuses.push(cqeStatus(dv, o + CH_SIZE));
          if (b[o] === PduType.R2T) {
            const cccid = dv.getUint16(o + DataOff.cccid, true);
            const ttag = dv.getUint16(o + DataOff.ttag, true);
            queueMicrotask(() => {
              ddv.setUint16(DataOff.cccid, cccid, true);
              ddv.setUint16(DataOff.ttag, ttag, true);
              qp.receive(data);
            });
          }
        }
      };
      io.onOut = sink;
      hosts.push({ qp, statuses });
      const cmds = Buffer.concat(
        Array.from({ length: QD }, (_, i) =>
          capsule(
            { ...base, opcode: 0x01, cid: i, nsid: 1, cdws: [0, 0, IO / BS - 1], sglLen: IO },
            (dv, s) => writeU64(dv, s + 40, ((h * QD + i) * (IO / BS)) % ((64 << 20) / BS - IO / BS)),
          ),
        ),
      );
      qp.receive(cmds);
    }
    for (let i = 0; i < 5; i++) await tick();

    // Every buffer of the pool is taken; the other commands wait for one.
    const inBackend = ns.held.length;
    const waits = hosts.reduce((n, h) => n + h.qp.stats.bufferWaits, 0);
    expect(inBackend).to.be.within(1, pool.large.count + pool.small.count);
    expect(waits).to.equal(HOSTS * QD - inBackend);
    expect(pool.large.made).to.equal(pool.large.count);
    expect(pool.bytesMade).to.be.at.most(pool.bytesMax);
    const grown = process.memoryUsage().arrayBuffers - before;
    // The pool (~3.6 MiB here) plus, per qpair (an admin and an I/O one per host), its receive and
    // send buffers and its requests' own in-capsule buffers (~0.8 MiB at these options): far
    // below the 254 MiB that buffers per request grown to 128 KiB took.
    const bound = pool.bytesMax + 2 * HOSTS * (1 << 20);
    expect(grown, `ArrayBuffer growth ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.below(bound);

    // Let the writes finish: each completion frees a buffer for the next waiting command.
    for (let round = 0; round < 10_000 && hosts.some((h) => h.statuses.length < QD); round++) {
      for (const f of ns.held.splice(0)) f();
      await tick();
    }
    for (const h of hosts) {
      expect(h.statuses.length).to.equal(QD);
      expect(h.statuses.every((s) => s === 0)).to.equal(true);
    }
    expect(tgt.iobuf.inUse).to.equal(0);
    expect(tgt.iobuf.waiting).to.equal(0);
    expect(tgt.nvmf_get_stats().poll_groups[0].completed_nvme_io).to.equal(HOSTS * QD);
    await tgt.close();
  });

  it('a closed connection gives back the buffers of commands still waiting for data', async () => {
    const pool = new IobufPool(iobufOptions({ small_pool_count: 64, large_pool_count: 8 }));
    const tgt = new NvmfTarget({ iobuf: pool });
    tgt.nvmf_create_transport({ trtype: 'TCP', buf_cache_size: 0 });
    tgt.registerBackend(new RamBackend({ name: 'Malloc0', blockSize: BS, numBlocks: 4096 }));
    tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
    tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
    tgt.subsystems.get(NQN)!.listeners.push({ trtype: 'TCP', adrfam: 'IPv4', ...local });
    const { io } = await connected(tgt);
    // 12 writes of 64 KiB: 8 get a buffer (R2T sent, no data follows), 4 wait for one.
    const cmds = Buffer.concat(
      Array.from({ length: 12 }, (_, i) =>
        capsule({ ...base, opcode: 0x01, cid: i, nsid: 1, cdws: [i * 128, 0, 127], sglLen: 65536 }),
      ),
    );
    io.send(cmds);
    await tick();
    expect(tgt.iobuf.inUse).to.equal(8);
    expect(tgt.iobuf.waiting).to.equal(4);
    io.qp.peerClosed();
    expect(tgt.iobuf.inUse).to.equal(0);
    expect(tgt.iobuf.waiting).to.equal(0);
    await tgt.close();
  });

  it("buf_cache_size: SPDK's UINT32_MAX caches 3/4 of the shared buffers per poll group; a fixed size must fit", async () => {
    const pool = new IobufPool(iobufOptions({ small_pool_count: 1024, large_pool_count: 512 }));
    const auto = new NvmfTarget({ iobuf: pool, pollGroups: 2 });
    auto.nvmf_create_transport({ trtype: 'TCP', num_shared_buffers: 511, buf_cache_size: 0xffff_ffff });
    // SPDK: (511 * 3 / 4) / 2 = 191; the value given is what nvmf_get_transports reports.
    expect(auto.iobuf.largeCacheSize).to.equal(191);
    expect(auto.nvmf_get_transports()[0].buf_cache_size).to.equal(0xffff_ffff);
    await auto.close();
    const fixed = new NvmfTarget({ iobuf: pool, pollGroups: 2 });
    expect(() => fixed.nvmf_create_transport({ trtype: 'TCP', num_shared_buffers: 511, buf_cache_size: 256 }))
      .to.throw(/cannot fill buf_cache_size 256 for 2 poll groups/)
      .with.property('code');
    await fixed.close();
  });
});
