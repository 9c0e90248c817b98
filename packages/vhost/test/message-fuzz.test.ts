// Fuzzing the vhost-user message stream with file descriptors. Seeds: what QEMU 7.2 sent while
// booting Linux on a vhost-user-blk (split and packed rings) and a vhost-user-scsi device
// (test/corpus/vhost-user-*.json, recorded by corpus-capture.ts through a proxy). A replay gives
// each message the fds it carried (memfds for memory regions and the inflight area, eventfds for
// kick/call/err), with guest memory shrunk to 4 MiB per region and ring addresses folded into it.
// Mutations drop, repeat, swap and truncate messages; change request codes, flags, indices, ring
// sizes, feature bits, addresses, region sizes and offsets, inflight sizes; and give messages too
// few or too many fds. Whatever arrives: no exception leaves the controller's pollers, the
// connection ends or continues, every fd the controller received is closed once the connection is
// gone, every guest mapping is unmapped, and a well-formed frontend is served afterwards.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { RamBackend } from '@storkit/block/testing';
import { DmaRegion } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';

import { BlkDevice, VhostController } from '../src/index.js';
import { closeFd, connect, eventfd, type NativeConnection, type VhostMessage } from '../src/native.js';
import { Blk } from '../src/spec.js';
import { harness, sockPath, until } from './helpers.js';
import { DATA, MockBlk } from './mock.js';

interface Recorded {
  request: number;
  flags: number;
  nfds: number;
  value?: string;
  index?: number;
  num?: number;
  nofd?: boolean;
  addr?: { flags: number; desc: number; used: number; avail: number; log: number };
  regions?: { guestPhysAddr: number; memorySize: number; userspaceAddr: number; mmapOffset: number }[];
  inflight?: { mmapSize: number; mmapOffset: number; numQueues: number; queueSize: number };
  config?: { offset: number; size: number; flags: number; data: string };
}

const CORPUS_DIR = fileURLToPath(new URL('../../test/corpus/', import.meta.url));
const corpus: { name: string; messages: Recorded[] }[] = readdirSync(CORPUS_DIR)
  .filter((f) => f.startsWith('vhost-user-') && f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f, messages: JSON.parse(readFileSync(CORPUS_DIR + f, 'utf8')).messages }));

const REGION = 4 << 20;
const MEM_REQUESTS = new Set([5, 37, 38]);

/** The fds this process opened for one replay, closed after it. */
class Fds {
  readonly regions: DmaRegion[] = [];
  readonly events: number[] = [];
  region(size: number): number {
    const r = DmaRegion.create(Math.max(4096, Math.min(size, REGION)), { hugepages: 'never' });
    this.regions.push(r);
    return r.fd;
  }
  event(): number {
    const fd = eventfd();
    this.events.push(fd);
    return fd;
  }
  close(): void {
    for (const r of this.regions.splice(0)) r.close();
    for (const fd of this.events.splice(0)) closeFd(fd);
  }
}

/** Shrink regions to REGION bytes and fold ring addresses into them (recorded regions are QEMU's 128 MiB+). */
function shrink(msgs: Recorded[]): Recorded[] {
  const spans: { ua: number; size: number }[] = [];
  const out = structuredClone(msgs);
  for (const m of out) {
    for (const r of m.regions ?? []) {
      spans.push({ ua: r.userspaceAddr, size: r.memorySize });
      r.memorySize = Math.min(r.memorySize, REGION);
      r.mmapOffset = 0;
    }
    if (m.addr) {
      const fold = (a: number) => {
        const s = spans.find((x) => a >= x.ua && a < x.ua + x.size);
        return s ? s.ua + ((a - s.ua) % (REGION - 0x20000)) : a;
      };
      m.addr.desc = fold(m.addr.desc);
      m.addr.avail = fold(m.addr.avail);
      m.addr.used = fold(m.addr.used);
    }
  }
  return out;
}

function toMessage(m: Recorded, fds: Fds, nfds: number): VhostMessage {
  const give: number[] = [];
  for (let i = 0; i < nfds; i++) {
    if (MEM_REQUESTS.has(m.request)) give.push(fds.region(m.regions?.[i]?.memorySize ?? REGION));
    else if (m.request === 32) give.push(fds.region(m.inflight?.mmapSize ?? 4096));
    else give.push(fds.event());
  }
  return {
    request: m.request,
    flags: m.flags,
    fds: give,
    value: m.value === undefined ? undefined : BigInt(m.value),
    index: m.index,
    num: m.num,
    nofd: m.nofd,
    addr: m.addr,
    regions: m.regions,
    inflight: m.inflight,
    config: m.config ? { ...m.config, data: Buffer.from(m.config.data, 'hex') } : undefined,
  } as VhostMessage;
}

/** Take the controller's replies, closing the fds they carry (GET_INFLIGHT_FD answers with one). */
function drain(c: NativeConnection): void {
  for (let m = c.recv(); m; m = c.recv()) for (const fd of m.fds) closeFd(fd);
}

/**
 * The process's open memfds and eventfds (the kinds the fuzz hands the controller), as "fd target".
 * Not a plain count: the whole test suite shares this process, and a worker or child of an earlier
 * test file may open or close other fds (pipes, sockets, libuv's own) while this test runs.
 */
function openFds(): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing (the listing's own directory fd among them)
    }
    if (target.includes('memfd:') || target.includes('[eventfd]')) out.add(`${fd} ${target}`);
  }
  return out;
}
/** The process's memfd mappings, a line of /proc/self/maps each (the same set-not-count reason). */
function memfdMaps(): Set<string> {
  return new Set(
    readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((l) => l.includes('memfd:')),
  );
}

const num = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 16, 128, 256, 1024, 32768, 32769, 65535, 65536, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const edit = fc.oneof(
  fc.record({ k: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('repeat' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('swap' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('request' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 45 }) }),
  fc.record({
    k: fc.constant('flags' as const),
    at: fc.nat(),
    v: fc.constantFrom(0, 1, 2, 3, 5, 9, 0xd, 0xffffffff),
  }),
  fc.record({
    k: fc.constant('index' as const),
    at: fc.nat(),
    v: fc.oneof(fc.integer({ min: 0, max: 300 }), num),
  }),
  fc.record({ k: fc.constant('num' as const), at: fc.nat(), v: num }),
  fc.record({
    k: fc.constant('value' as const),
    at: fc.nat(),
    v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  }),
  fc.record({
    k: fc.constant('addr' as const),
    at: fc.nat(),
    field: fc.constantFrom('desc', 'avail', 'used', 'log', 'flags'),
    v: fc.oneof(fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.integer({ min: -0x2000, max: 0x2000 })),
  }),
  fc.record({
    k: fc.constant('region' as const),
    at: fc.nat(),
    field: fc.constantFrom('guestPhysAddr', 'memorySize', 'userspaceAddr', 'mmapOffset'),
    v: fc.oneof(fc.constantFrom(0, 4096, REGION, REGION + 1, 2 ** 52), fc.integer({ min: 0, max: 2 ** 40 })),
  }),
  fc.record({
    k: fc.constant('inflight' as const),
    at: fc.nat(),
    field: fc.constantFrom('mmapSize', 'mmapOffset', 'numQueues', 'queueSize'),
    v: fc.oneof(fc.constantFrom(0, 1, 4096, 65535, 65536), fc.integer({ min: 0, max: 2 ** 32 })),
  }),
  fc.record({ k: fc.constant('fds' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 9 }) }),
);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function mutate(base: Recorded[], edits: Edit[]): { msgs: Recorded[]; nfds: number[] } {
  const msgs = structuredClone(base);
  let nfds = msgs.map((m) => m.nfds);
  for (const e of edits) {
    if (msgs.length === 0) break;
    const i = e.at % msgs.length;
    const m = msgs[i];
    switch (e.k) {
      case 'drop':
        msgs.splice(i, 1);
        nfds.splice(i, 1);
        break;
      case 'repeat':
        msgs.splice(i, 0, structuredClone(m));
        nfds.splice(i, 0, nfds[i]);
        break;
      case 'swap':
        if (i + 1 < msgs.length) {
          [msgs[i], msgs[i + 1]] = [msgs[i + 1], msgs[i]];
          [nfds[i], nfds[i + 1]] = [nfds[i + 1], nfds[i]];
        }
        break;
      case 'truncate':
        msgs.length = i + 1;
        nfds = nfds.slice(0, i + 1);
        break;
      case 'request':
        m.request = e.v;
        break;
      case 'flags':
        m.flags = e.v;
        break;
      case 'index':
        m.index = e.v;
        break;
      case 'num':
        m.num = e.v;
        break;
      case 'value':
        m.value = e.v.toString();
        break;
      case 'addr':
        if (m.addr) m.addr[e.field] = e.field === 'flags' ? e.v >>> 0 : Math.abs(e.v);
        break;
      case 'region':
        if (m.regions?.length) m.regions[0][e.field] = e.v;
        break;
      case 'inflight':
        if (m.inflight)
          m.inflight[e.field] = e.field === 'numQueues' || e.field === 'queueSize' ? e.v % 65536 : e.v;
        break;
      case 'fds':
        nfds[i] = e.v;
        break;
    }
  }
  return { msgs, nfds };
}

describe('vhost: message stream fuzzing (QEMU corpus)', function () {
  this.timeout(180_000);

  it(`the corpus: ${corpus.map((c) => `${c.name} (${c.messages.length} messages)`).join(', ')}`, () => {
    expect(corpus.map((c) => c.name)).to.deep.equal([
      'vhost-user-blk-packed.json',
      'vhost-user-blk.json',
      'vhost-user-scsi.json',
    ]);
    for (const c of corpus) {
      const reqs = new Set(c.messages.map((m) => m.request));
      // What QEMU does to bring a device up: features, memory slots, inflight, rings, enable.
      for (const r of [1, 2, 3, 9, 12, 13, 31, 32, 37, 18])
        expect(reqs.has(r), `${c.name} request ${r}`).to.equal(true);
    }
  });

  it('mutated streams with fds: the controller survives, closes what it received, unmaps its mappings, and serves a clean frontend after', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 });
    const path = sockPath('msgfuzz');
    const ctrl = new VhostController({
      name: 'fuzz',
      socketPath: path,
      device: new BlkDevice(ram, { numQueues: 2 }),
      packedRing: true,
    });
    ctrl.start();
    const pump = async (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        h.advanceTime(250);
        h.pollOnce();
        await new Promise((r) => setImmediate(r));
      }
    };
    const seeds = corpus.map((c) => shrink(c.messages));
    // One untouched replay first: the shrunk corpus brings the device up.
    {
      const fds = new Fds();
      const c = connect(path);
      for (const m of seeds[1]) {
        c.send(toMessage(m, fds, m.nfds));
        await pump(2);
        drain(c);
      }
      await pump(5);
      expect(ctrl.connected, ctrl.lastError ?? '').to.equal(true);
      expect(ctrl.stats.protocolErrors).to.equal(0);
      c.close();
      await until(h, () => !ctrl.connected, 'disconnect');
      fds.close();
    }
    const fds0 = openFds();
    const maps0 = memfdMaps();
    let sent = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(seeds.length - 1), fc.array(edit, { maxLength: 6 }), async (s, edits) => {
        const { msgs, nfds } = mutate(seeds[s], edits);
        const fds = new Fds();
        let c: NativeConnection | null = connect(path);
        for (const [i, m] of msgs.entries()) {
          let msg: VhostMessage;
          try {
            msg = toMessage(m, fds, nfds[i]);
            c.send(msg);
            sent++;
          } catch {
            // The client's own encoder refused it (a value past 2^53, a closed connection).
            refused++;
          }
          await pump(2);
          try {
            drain(c);
          } catch {
            break;
          }
          if (c.closed) break;
        }
        await pump(4);
        c.close();
        c = null;
        await until(h, () => !ctrl.connected, 'disconnect');
        await pump(4);
        fds.close();
      }),
      { numRuns: 120 },
    );
    expect(sent).to.be.greaterThan(1000);
    // Every fd the controller took in and every region it mapped went away with the connections.
    expect(
      [...openFds()].filter((f) => !fds0.has(f)),
      'memfds and eventfds opened during the fuzz and still open',
    ).to.deep.equal([]);
    expect(
      [...memfdMaps()].filter((m) => !maps0.has(m)),
      'memfd mappings made during the fuzz and still mapped',
    ).to.deep.equal([]);
    // A well-formed frontend is served.
    const m = await MockBlk.open(h, path);
    m.q.add(m.request(Blk.T.Out, 5, 512));
    const [[, len]] = await m.complete(1);
    expect(len).to.equal(1);
    expect(m.status()).to.equal(Blk.S.Ok);
    m.close();
    ctrl.close();
    h.close();
    console.log(
      `      ${sent} messages sent, ${refused} refused by the client's encoder, ${ctrl.stats.protocolErrors} protocol errors`,
    );
    void DATA;
  });
});
