import { connect as netConnect } from 'node:net';
import { type BlockBackend, type IoCb, IoStatus, type IoVec } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { DmaRegion } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';
import { DriverQueue } from '../src/driver.js';
import { BlkDevice, VhostController, VhostUserFrontend, VirtioUserBlk } from '../src/index.js';
import { closeFd } from '../src/native.js';
import { PackedQueue } from '../src/packed.js';
import { Blk, bits, Feature, ProtocolFeature, Req, Vring } from '../src/spec.js';
import { MAX_SEGMENTS } from '../src/virtqueue.js';
import { harness, io, pattern, pumper, sockPath, until } from './helpers.js';
import { DATA, MockBlk } from './mock.js';

/** A backend whose completions wait until the test releases them (I/O "in flight" for as long as needed). */
class HeldBackend extends RamBackend {
  held: (() => void)[] = [];
  override readv<C>(iov: IoVec, off: number, n: number, cb: IoCb<C>, ctx: C): void {
    super.readv(iov, off, n, (s) => this.held.push(() => cb(s, ctx)), null);
  }
  release(): void {
    for (const f of this.held.splice(0)) f();
  }
}

describe('hostile frontends and guests', () => {
  let h: ReturnType<typeof harness>;
  let ram: RamBackend;
  let ctrl: VhostController;
  let other: VhostController;
  let otherDev: VirtioUserBlk;
  let path: string;

  beforeEach(async () => {
    h = harness();
    ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 });
    path = sockPath('hostile');
    ctrl = new VhostController({ name: 'bad', socketPath: path, device: new BlkDevice(ram) });
    ctrl.start();
    // A second, well-behaved controller that must keep serving throughout.
    const otherPath = sockPath('good');
    other = new VhostController({
      name: 'good',
      socketPath: otherPath,
      device: new BlkDevice(new RamBackend({ name: 'Malloc1', blockSize: 512, numBlocks: 2048 })),
    });
    other.start();
    otherDev = await VirtioUserBlk.attach({ path: otherPath, name: 'Good0', queueSize: 8, pump: pumper(h) });
  });

  afterEach(async () => {
    // The other controller still serves.
    const b = pattern(4096, 9);
    expect(await io(h, (cb) => otherDev.writev([b], 8, 8, cb, null))).to.equal(IoStatus.SUCCESS);
    const back = new Uint8Array(4096);
    expect(await io(h, (cb) => otherDev.readv([back], 8, 8, cb, null))).to.equal(IoStatus.SUCCESS);
    expect(Buffer.from(back).equals(Buffer.from(b))).to.equal(true);
    expect(other.stats.protocolErrors).to.equal(0);
    otherDev.detach();
    ctrl.close();
    other.close();
    h.close();
  });

  async function wellFormedWorks(m: MockBlk): Promise<void> {
    m.mem.set(pattern(512, 3), DATA + 4096);
    m.q.add(m.request(Blk.T.Out, 5, 512));
    const [[, len]] = await m.complete(1);
    expect(len).to.equal(1);
    expect(m.status()).to.equal(Blk.S.Ok);
    expect(Buffer.from(ram.data.subarray(5 * 512, 6 * 512)).equals(Buffer.from(pattern(512, 3)))).to.equal(
      true,
    );
  }

  it('a descriptor outside guest memory completes with length 0; the queue keeps working', async () => {
    const m = await MockBlk.open(h, path);
    const segs = m.request(Blk.T.In, 0, 4096);
    segs[1] = { addr: (1 << 20) - 100, len: 4096, write: true }; // crosses the end of memory
    m.q.add(segs);
    const segs2 = m.request(Blk.T.In, 0, 512, 1);
    segs2[1] = { addr: 2 ** 52, len: 512, write: true };
    m.q.add(segs2);
    const used = await m.complete(2);
    expect(used.map((u) => u[1])).to.deep.equal([0, 0]);
    expect(ctrl.queues[0].stats.badChains).to.equal(2);
    await wellFormedWorks(m);
    m.close();
  });

  it('a loop in a chain, an oversized chain and a next index past the table complete with length 0', async () => {
    const m = await MockBlk.open(h, path, { queueSize: 256 });
    // Loop: 0 -> 1 -> 0.
    m.header(DATA, Blk.T.In, 0);
    m.q.writeDesc(0, DATA, 16, Vring.DescFNext, 1);
    m.q.writeDesc(1, DATA + 4096, 512, Vring.DescFNext | Vring.DescFWrite, 0);
    m.q.offer(0);
    // Next index beyond the table.
    m.q.writeDesc(2, DATA, 16, Vring.DescFNext, 4000);
    m.q.offer(2);
    // Longer than MAX_SEGMENTS: a straight chain of 200 one-byte buffers.
    for (let i = 10; i < 10 + 200; i++)
      m.q.writeDesc(i, DATA + 4096 + i, 1, Vring.DescFNext | Vring.DescFWrite, i + 1);
    m.q.writeDesc(210, DATA + 512, 1, Vring.DescFWrite, 0);
    m.q.offer(10);
    const used = await m.complete(3);
    expect(used.map((u) => u[1])).to.deep.equal([0, 0, 0]);
    expect(MAX_SEGMENTS).to.be.lessThan(200);
    expect(ctrl.queues[0].running).to.equal(true);
    m.close();
  });

  it('bad indirect tables (outside memory, nested, not a multiple of 16) complete with length 0', async () => {
    const m = await MockBlk.open(h, path);
    m.q.writeDesc(0, (1 << 20) - 16, 48, Vring.DescFIndirect, 0);
    m.q.offer(0);
    const t = DATA + 0x8000;
    m.q.dv.setBigUint64(t, BigInt(t), true);
    m.q.dv.setUint32(t + 8, 16, true);
    m.q.dv.setUint16(t + 12, Vring.DescFIndirect, true);
    m.q.writeDesc(1, t, 16, Vring.DescFIndirect, 0);
    m.q.offer(1);
    m.q.writeDesc(2, t, 20, Vring.DescFIndirect, 0);
    m.q.offer(2);
    const used = await m.complete(3);
    expect(used.map((u) => u[1])).to.deep.equal([0, 0, 0]);
    // A good indirect request still works.
    m.mem.set(pattern(512, 4), DATA + 4096);
    m.q.addIndirect(m.request(Blk.T.Out, 9, 512), DATA + 0x9000);
    const [[, len]] = await m.complete(1);
    expect(len).to.equal(1);
    expect(Buffer.from(ram.data.subarray(9 * 512, 10 * 512)).equals(Buffer.from(pattern(512, 4)))).to.equal(
      true,
    );
    m.close();
  });

  it('a bad avail index or head marks the queue broken; the controller serves the next frontend', async () => {
    let m = await MockBlk.open(h, path);
    m.q.setAvailIdx(100); // 100 entries ahead of a 16-entry ring
    await until(h, () => ctrl.lastError?.includes('avail index') === true, 'broken queue');
    expect(ctrl.queues[0].running).to.equal(false);
    m.close();
    await until(h, () => !ctrl.connected, 'disconnect');
    m = await MockBlk.open(h, path);
    m.q.offer(999); // head beyond the table
    m.q.kick();
    await until(h, () => ctrl.lastError?.includes('descriptor 999') === true, 'broken queue');
    m.close();
    await until(h, () => !ctrl.connected, 'disconnect');
    m = await MockBlk.open(h, path);
    await wellFormedWorks(m);
    m.close();
  });

  it('a ring in unmapped memory is refused and nothing is touched', async () => {
    const m = await MockBlk.open(h, path);
    // Queue 0 again, rings far outside the announced memory (frontend addresses).
    await m.fe.stopQueue(0);
    const err = await m.fe.startQueue(0, 16, 0x7000_0000, 0x7000_1000, 0x7000_2000).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/refused request 12/);
    expect(ctrl.queues[0].running).to.equal(false);
    expect(ctrl.lastError).to.match(/ring not in guest memory/);
    m.close();
  });

  it('garbage on the socket, bad vring indices and oversized payloads drop the connection, never the controller', async () => {
    for (const bytes of [
      Buffer.alloc(64, 0xff),
      Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0]), // 64 KiB payload announced
      Buffer.from([8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 99, 0, 0, 0, 16, 0, 0, 0]), // SET_VRING_NUM on vring 99
      Buffer.from([5, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]), // SET_MEM_TABLE, 1 region, no fd
    ]) {
      const before = ctrl.stats.protocolErrors;
      const s = netConnect(path).on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write(bytes);
      await until(h, () => ctrl.stats.protocolErrors > before, 'protocol error');
      s.destroy();
      await until(h, () => !ctrl.connected, 'disconnect');
    }
    const m = await MockBlk.open(h, path);
    await wellFormedWorks(m);
    m.close();
  });

  it('fuzzed message streams never crash the controller', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 12, maxLength: 60 }), { minLength: 1, maxLength: 6 }),
        async (msgs) => {
          const s = netConnect(path).on('error', () => {});
          await new Promise((r) => s.once('connect', r));
          for (const m of msgs) {
            m[4] = (m[4] & ~3) | 1; // version 1, so the decoder gets past the header
            s.write(m);
          }
          for (let i = 0; i < 20; i++) {
            h.advanceTime(250);
            h.pollOnce();
            await new Promise((r) => setImmediate(r));
          }
          s.destroy();
          await until(h, () => !ctrl.connected, 'disconnect');
        },
      ),
      { numRuns: 25 },
    );
    const m = await MockBlk.open(h, path);
    await wellFormedWorks(m);
    m.close();
  });

  it('a frontend that never reads its replies is dropped without stalling the reactor', async () => {
    const s = netConnect(path).on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    const get = Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]); // GET_FEATURES
    s.write(Buffer.concat(Array.from({ length: 50_000 }, () => get)));
    let worst = 0;
    await until(
      h,
      () => {
        const t0 = performance.now();
        h.advanceTime(250);
        h.pollOnce();
        worst = Math.max(worst, performance.now() - t0);
        return ctrl.lastError?.includes('send') === true;
      },
      'flooding frontend dropped',
      20_000,
    );
    expect(worst).to.be.lessThan(250);
    s.destroy();
    await until(h, () => !ctrl.connected, 'disconnect');
  });

  it('random descriptor tables and avail rings never escape guest memory or crash the device', async () => {
    const m = await MockBlk.open(h, path, { queueSize: 16 });
    const before = ctrl.queues[0].stats.requests;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 256, maxLength: 256 }),
        fc.array(fc.nat(15), { minLength: 1, maxLength: 4 }),
        async (table, heads) => {
          if (!ctrl.queues[0].running) return;
          m.mem.set(table, m.q.descOff);
          // Point a few addresses at real buffers so some chains are valid.
          m.q.dv.setUint32(m.q.descOff + 4, 0, true);
          m.q.dv.setUint32(m.q.descOff, DATA, true);
          const start = m.q.availIdx;
          for (const hd of heads) m.q.offer(hd);
          m.q.kick();
          await until(h, () => m.q.usedIdx() === m.q.availIdx || !ctrl.queues[0].running, 'chains consumed');
          for (let i = start; i !== m.q.usedIdx(); i = (i + 1) & 0xffff) {
            const len = m.q.dv.getUint32(m.q.usedOff + 4 + 8 * (i % 16) + 4, true);
            expect(len).to.be.at.most((1 << 20) + 1); // never more than the guest has
          }
          m.q.lastUsed = m.q.usedIdx();
        },
      ),
      { numRuns: 60 },
    );
    expect(ctrl.queues[0].stats.requests).to.be.greaterThan(before);
    m.close();
  });

  it('disconnect mid-I/O: requests finish into retained memory, which is unmapped once they are done', async () => {
    ctrl.close();
    const held = new HeldBackend({ name: 'Held', blockSize: 512, numBlocks: 2048 });
    ctrl = new VhostController({
      name: 'held',
      socketPath: path,
      device: new BlkDevice(held as BlockBackend),
    });
    ctrl.start();
    const m = await MockBlk.open(h, path);
    m.q.add(m.request(Blk.T.In, 0, 4096));
    m.q.kick();
    await until(h, () => held.held.length === 1, 'request at the backend');
    expect(ctrl.inflight).to.equal(1);
    m.close();
    await until(h, () => !ctrl.connected, 'disconnect');
    expect(ctrl.inflight).to.equal(1);
    held.release();
    await until(h, () => ctrl.inflight === 0, 'drain');
    const m2 = await MockBlk.open(h, path);
    m2.mem.set(pattern(512, 3), DATA + 4096);
    m2.q.add(m2.request(Blk.T.Out, 5, 512));
    const [[, len]] = await m2.complete(1);
    expect(len).to.equal(1);
    m2.close();
  });

  it('GET_VRING_BASE waits for in-flight I/O and answers the last avail index', async () => {
    ctrl.close();
    const held = new HeldBackend({ name: 'Held', blockSize: 512, numBlocks: 2048 });
    ctrl = new VhostController({
      name: 'held',
      socketPath: path,
      device: new BlkDevice(held as BlockBackend),
    });
    ctrl.start();
    const m = await MockBlk.open(h, path);
    m.q.add(m.request(Blk.T.In, 0, 512));
    m.q.add(m.request(Blk.T.In, 1, 512, 1));
    m.q.kick();
    await until(h, () => held.held.length === 2, 'requests at the backend');
    let base = -1;
    m.fe.stopQueue(0).then((b) => {
      base = b;
    });
    for (let i = 0; i < 10; i++) {
      h.advanceTime(250);
      h.pollOnce();
      await new Promise((r) => setImmediate(r));
    }
    expect(base).to.equal(-1);
    held.release();
    await until(h, () => base !== -1, 'GET_VRING_BASE reply');
    expect(base).to.equal(2);
    // Both completions reached the used ring before the reply.
    expect(m.q.usedIdx()).to.equal(2);
    expect(Req.GetVringBase).to.equal(11);
    m.close();
  });
});

describe('memory hot add and remove (CONFIGURE_MEM_SLOTS)', () => {
  it('serves buffers in an added region, refuses them once it is removed, and answers GET_MAX_MEM_SLOTS', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 });
    const path = sockPath('hotadd');
    const ctrl = new VhostController({ name: 'hot', socketPath: path, device: new BlkDevice(ram) });
    ctrl.start();
    const extra = DmaRegion.create(65536, { hugepages: 'never' });
    try {
      const m = await MockBlk.open(h, path, { protocol: bits(ProtocolFeature.ConfigureMemSlots) });
      expect(await m.fe.u64(Req.GetMaxMemSlots)).to.equal(32n);
      const gpa = 1 << 24;
      await m.fe.addRegion(extra.fd, gpa, 65536, 0x2000_0000_0000);
      expect(ctrl.memory.regions.length).to.equal(2);
      extra.bytes.set(pattern(4096, 21), 4096);
      const segs = m.request(Blk.T.Out, 40, 4096);
      segs[1] = { addr: gpa + 4096, len: 4096, write: false };
      m.q.add(segs);
      let [[, len]] = await m.complete(1);
      expect(len).to.equal(1);
      expect(
        Buffer.from(ram.data.subarray(40 * 512, 48 * 512)).equals(Buffer.from(pattern(4096, 21))),
      ).to.equal(true);
      await m.fe.removeRegion(gpa, 65536, 0x2000_0000_0000);
      expect(ctrl.memory.regions.length).to.equal(1);
      m.q.add(segs);
      [[, len]] = await m.complete(1);
      expect(len).to.equal(0);
      // A region overlapping guest memory already mapped is refused (REPLY_ACK failure).
      const err = await m.fe.addRegion(extra.fd, 4096, 65536, 0x3000_0000_0000).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/refused/);
      m.close();
    } finally {
      extra.close();
      ctrl.close();
      h.close();
    }
  });
});

describe('hostile packed rings', () => {
  const SIZE = 16;
  const DRV = 0x1000;
  const DEV = 0x1010;
  const AVAIL = 1 << 7;
  const USED = 1 << 15;

  async function openPacked(h: ReturnType<typeof harness>, path: string) {
    const fe = VhostUserFrontend.connect(path, { memSize: 1 << 20, pump: pumper(h) });
    const f = await fe.negotiate(bits(Feature.RingPacked, Feature.RingIndirectDesc));
    expect(f & bits(Feature.RingPacked)).to.equal(bits(Feature.RingPacked));
    await fe.startQueue(0, SIZE, 0, DRV, DEV);
    const dv = new DataView(fe.memory.buffer);
    /** Descriptor at ring slot `i`, made available for wrap counter 1. */
    const desc = (i: number, addr: number, len: number, id: number, flags: number) => {
      dv.setUint32(16 * i, addr % 2 ** 32, true);
      dv.setUint32(16 * i + 4, Math.floor(addr / 2 ** 32), true);
      dv.setUint32(16 * i + 8, len, true);
      dv.setUint16(16 * i + 12, id, true);
      dv.setUint16(16 * i + 14, flags | AVAIL, true);
    };
    const usedAt = async (i: number): Promise<{ id: number; len: number }> => {
      await until(
        h,
        () => (dv.getUint16(16 * i + 14, true) & (AVAIL | USED)) === (AVAIL | USED),
        `used slot ${i}`,
      );
      return { id: dv.getUint16(16 * i + 12, true), len: dv.getUint32(16 * i + 8, true) };
    };
    return { fe, dv, desc, usedAt, mem: fe.memory.bytes };
  }

  it('serve good chains and complete wild, nested-indirect ones with length 0; an endless chain breaks the queue', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 });
    const path = sockPath('packed');
    const ctrl = new VhostController({
      name: 'p',
      socketPath: path,
      device: new BlkDevice(ram),
      packedRing: true,
    });
    ctrl.start();
    try {
      const p = await openPacked(h, path);
      expect(ctrl.queues[0]).to.be.instanceOf(PackedQueue);
      // A good OUT request: header, data, status in slots 0-2, buffer id 7.
      p.dv.setUint32(DATA, Blk.T.Out, true);
      p.dv.setBigUint64(DATA + 8, 3n, true);
      p.mem.set(pattern(512, 5), DATA + 4096);
      p.desc(2, DATA + 512, 1, 7, Vring.DescFWrite);
      p.desc(1, DATA + 4096, 512, 7, Vring.DescFNext);
      p.desc(0, DATA, 16, 7, Vring.DescFNext);
      expect(await p.usedAt(0)).to.deep.equal({ id: 7, len: 1 });
      expect(Buffer.from(ram.data.subarray(3 * 512, 4 * 512)).equals(Buffer.from(pattern(512, 5)))).to.equal(
        true,
      );
      // A buffer outside memory (slots 3-4), id 8: the used entry goes to slot 3 (after the 3 of the first chain).
      p.desc(4, 2 ** 40, 512, 8, Vring.DescFWrite);
      p.desc(3, DATA, 16, 8, Vring.DescFNext);
      expect(await p.usedAt(3)).to.deep.equal({ id: 8, len: 0 });
      // A nested indirect table (slot 5), id 9.
      const t = DATA + 0x8000;
      p.dv.setBigUint64(t, BigInt(t), true);
      p.dv.setUint32(t + 8, 16, true);
      p.dv.setUint16(t + 14, Vring.DescFIndirect, true);
      p.desc(5, t, 16, 9, Vring.DescFIndirect);
      expect(await p.usedAt(5)).to.deep.equal({ id: 9, len: 0 });
      // A chain that never ends: every remaining slot says NEXT.
      for (let i = SIZE - 1; i >= 6; i--) p.desc(i, DATA, 16, 10, Vring.DescFNext);
      for (let i = 0; i < 6; i++) p.desc(i, DATA, 16, 10, Vring.DescFNext);
      await until(
        h,
        () =>
          ctrl.lastError?.includes('longer than the ring') === true ||
          ctrl.lastError?.includes('not available') === true,
        'broken',
      );
      expect(ctrl.queues[0].running).to.equal(false);
      p.fe.close();
      await until(h, () => !ctrl.connected, 'disconnect');
    } finally {
      ctrl.close();
      h.close();
    }
  });
});

describe('in-flight tracking across a backend restart (INFLIGHT_SHMFD)', () => {
  it('a restarted controller finishes the requests its predecessor took and never completed', async () => {
    const h = harness();
    const path = sockPath('inflight');
    const held = new HeldBackend({ name: 'Held', blockSize: 512, numBlocks: 2048 });
    let ctrl = new VhostController({
      name: 'inf',
      socketPath: path,
      device: new BlkDevice(held as BlockBackend),
    });
    ctrl.start();
    const fe = VhostUserFrontend.connect(path, { memSize: 1 << 20, pump: pumper(h) });
    try {
      await fe.negotiate(bits(Feature.RingIndirectDesc), bits(ProtocolFeature.InflightShmfd));
      const inf = await fe.getInflight(1, 16);
      await fe.setInflight(inf.fd, inf.size, 1, 16);
      const q = new DriverQueue(fe.memory.bytes, 0, 0, 16);
      await fe.startQueue(0, 16, q.descAddr, q.availAddr, q.usedAddr);
      const mem = fe.memory.bytes;
      const heads: number[] = [];
      for (let k = 0; k < 3; k++) {
        const base = DATA + k * 0x10000;
        new DataView(mem.buffer, mem.byteOffset).setUint32(base, Blk.T.In, true);
        new DataView(mem.buffer, mem.byteOffset).setBigUint64(base + 8, BigInt(10 + k), true);
        mem[base + 512] = 0xee;
        heads.push(
          q.add([
            { addr: base, len: 16, write: false },
            { addr: base + 4096, len: 512, write: true },
            { addr: base + 512, len: 1, write: true },
          ]),
        );
      }
      q.kick();
      await until(h, () => held.held.length === 3, 'requests at the backend');
      held.held.shift()?.(); // the first one completes
      await until(h, () => q.usedIdx() === 1, 'first completion');
      // The backend dies with two requests in flight (their completions never come).
      ctrl.close();
      const ram = new RamBackend({ name: 'Malloc9', blockSize: 512, numBlocks: 2048 });
      ram.data.set(pattern(2048 * 512, 31));
      ctrl = new VhostController({ name: 'inf', socketPath: path, device: new BlkDevice(ram) });
      ctrl.start();
      // The frontend reconnects with the same guest memory and hands back the in-flight buffer.
      const fe2 = VhostUserFrontend.connect(path, { memSize: 0, memory: fe.memory, pump: pumper(h) });
      await fe2.negotiate(bits(Feature.RingIndirectDesc), bits(ProtocolFeature.InflightShmfd));
      await fe2.setInflight(inf.fd, inf.size, 1, 16);
      await fe2.startQueue(0, 16, q.descAddr, q.availAddr, q.usedAddr);
      const used: number[] = [q.takeUsed()?.[0] ?? -1];
      await until(
        h,
        () => {
          for (let u = q.takeUsed(); u !== null; u = q.takeUsed()) used.push(u[0]);
          return used.length === 3;
        },
        'resubmitted requests',
      );
      expect([...used].sort()).to.deep.equal([...heads].sort());
      for (const k of [1, 2]) {
        const base = DATA + k * 0x10000;
        expect(mem[base + 512]).to.equal(Blk.S.Ok);
        expect(
          Buffer.from(mem.subarray(base + 4096, base + 4608)).equals(
            Buffer.from(ram.data.subarray((10 + k) * 512, (11 + k) * 512)),
          ),
        ).to.equal(true);
      }
      // New requests carry on after the resubmitted ones.
      const base = DATA;
      mem[base + 512] = 0xee;
      q.add([
        { addr: base, len: 16, write: false },
        { addr: base + 4096, len: 512, write: true },
        { addr: base + 512, len: 1, write: true },
      ]);
      q.kick();
      await until(h, () => q.takeUsed() !== null, 'new request');
      expect(mem[base + 512]).to.equal(Blk.S.Ok);
      fe2.conn.close();
      closeFd(inf.fd);
    } finally {
      fe.close();
      ctrl.close();
      h.close();
    }
  });
});

describe('memory tables that lie', () => {
  it('a region larger than its file, or overlapping another, is refused; the old table stays', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 });
    const path = sockPath('lying');
    const ctrl = new VhostController({ name: 'lie', socketPath: path, device: new BlkDevice(ram) });
    ctrl.start();
    try {
      const m = await MockBlk.open(h, path);
      const refused = (p: Promise<unknown>) =>
        p.then(
          () => null,
          (e: Error) => e.message,
        );
      const uva = 0x1000_0000_0000;
      // 64 MiB claimed over a 1 MiB memfd: touching it would fault, so it is never mapped.
      const big = [{ guestPhysAddr: 0, memorySize: 64 << 20, userspaceAddr: uva, mmapOffset: 0 }];
      expect(await refused(m.fe.request(Req.SetMemTable, { fds: [m.fe.memory.fd], regions: big }))).to.match(
        /refused/,
      );
      const overlap = [
        { guestPhysAddr: 0, memorySize: 1 << 19, userspaceAddr: uva, mmapOffset: 0 },
        { guestPhysAddr: 1 << 18, memorySize: 1 << 19, userspaceAddr: uva + (1 << 19), mmapOffset: 1 << 19 },
      ];
      expect(
        await refused(
          m.fe.request(Req.SetMemTable, { fds: [m.fe.memory.fd, m.fe.memory.fd], regions: overlap }),
        ),
      ).to.match(/refused/);
      expect(ctrl.connected).to.equal(true);
      expect(ctrl.memory.regions.map((r) => r.size)).to.deep.equal([1 << 20]);
      m.mem.set(pattern(512, 3), DATA + 4096);
      m.q.add(m.request(Blk.T.Out, 5, 512));
      const [[, len]] = await m.complete(1);
      expect(len).to.equal(1);
      m.close();
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
