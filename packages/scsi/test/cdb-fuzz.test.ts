// Fuzzing the SCSI CDB decoder and the commands behind it. Seeds: every kind of CDB libiscsi's
// conformance suite sent (test/corpus/cdbs.txt, recorded from the real initiator by
// ../iscsi/test/corpus-capture.ts). Each seed runs as it is, then mutated (bytes set, bits flipped,
// lengths cut and stretched, opcodes swapped, data-out of any size). Whatever arrives, a command
// must complete exactly once with a real SCSI status and well-formed sense, never throw, never
// hand the backend an I/O outside the medium or a scatter list of the wrong size, and never
// return more data-in than its buffer holds.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { IoCb, IoVec, Lba } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';
import fc from 'fast-check';

import { Nexus, ScsiDevice, ScsiTask, Status } from '../src/index.js';

const corpus = (f: string): Uint8Array[] =>
  readFileSync(fileURLToPath(new URL(`../../test/corpus/${f}`, import.meta.url)), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      // As a transport hands it over: at least 16 bytes, zero-padded.
      const b = Buffer.from(l, 'hex');
      const out = new Uint8Array(Math.max(16, b.length));
      out.set(b);
      return out;
    });
const libiscsi = corpus('cdbs.txt');
const seeds = [...libiscsi, ...corpus('cdbs-extra.txt')];

const STATUSES = new Set<number>(Object.values(Status));
const BLOCKS = 256;

/** A RAM backend that records every I/O the LUN asks of it that a correct LUN would never send. */
class CheckedBackend extends RamBackend {
  readonly violations: string[] = [];
  #check(op: string, offset: Lba, count: Lba, iovs: IoVec[]): void {
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(count) ||
      offset < 0 ||
      count < 0 ||
      offset + count > this.numBlocks
    )
      this.violations.push(`${op} [${offset}, +${count}) outside ${this.numBlocks} blocks`);
    for (const iov of iovs) {
      const bytes = iov.reduce((n, v) => n + v.length, 0);
      if (bytes !== count * this.blockSize)
        this.violations.push(`${op} of ${count} blocks with ${bytes} bytes`);
    }
  }
  override readv<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#check('read', offset, count, [iov]);
    super.readv(iov, offset, count, cb, ctx);
  }
  override writev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#check('write', offset, count, [iov]);
    super.writev(iov, offset, count, cb, ctx);
  }
  override unmap<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#check('unmap', offset, count, []);
    super.unmap(offset, count, cb, ctx);
  }
  override writeZeroes<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#check('write zeroes', offset, count, []);
    super.writeZeroes(offset, count, cb, ctx);
  }
  override compareAndWritev<C>(c: IoVec, w: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#check('compare and write', offset, count, [c, w]);
    super.compareAndWritev(c, w, offset, count, cb, ctx);
  }
}

interface Outcome {
  status: number;
  sense: Uint8Array;
  dataIn: number;
  dataInCap: number;
  calls: number;
}

/** Runs one CDB; resolves when it completes, rejects if it never does or completes twice. */
function runCdb(
  dev: ScsiDevice,
  nexus: Nexus,
  cdb: Uint8Array,
  dataOut: Uint8Array,
  expected: number,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const t = new ScsiTask();
    t.cdb = cdb;
    t.nexus = nexus;
    t.expectedLength = expected;
    t.ensureDataOut(dataOut.length).set(dataOut);
    t.dataOutLength = dataOut.length;
    let calls = 0;
    const timer = setTimeout(
      () => reject(new Error(`CDB ${Buffer.from(cdb).toString('hex')} never completed`)),
      5000,
    );
    t.onDone = (x) => {
      calls++;
      if (calls > 1) {
        reject(new Error(`CDB ${Buffer.from(cdb).toString('hex')} completed twice`));
        return;
      }
      // A second completion would come later: wait a few turns before resolving.
      setImmediate(() =>
        setImmediate(() => {
          clearTimeout(timer);
          resolve({
            status: x.status,
            sense: x.sense.slice(0, x.senseLength),
            dataIn: x.dataInLength,
            dataInCap: x.dataIn.length,
            calls,
          });
        }),
      );
    };
    dev.execute(t);
  });
}

function check(cdb: Uint8Array, o: Outcome): void {
  const hex = Buffer.from(cdb).toString('hex');
  expect(STATUSES.has(o.status), `status 0x${o.status.toString(16)} for ${hex}`).to.equal(true);
  expect(o.dataIn, `data-in for ${hex}`).to.be.within(0, o.dataInCap);
  if (o.status === Status.CheckCondition) {
    expect(o.sense.length, `sense for ${hex}`).to.be.greaterThan(7);
    expect([0x70, 0x71, 0x72, 0x73], `sense response code for ${hex}`).to.include(o.sense[0] & 0x7f);
  }
}

function device(blockSize: number): { dev: ScsiDevice; ram: CheckedBackend } {
  const ram = new CheckedBackend({ name: 'Malloc0', blockSize, numBlocks: BLOCKS });
  const dev = new ScsiDevice('iqn.2016-06.io.storkit:fuzz');
  dev.addLun(0, ram);
  return { dev, ram };
}

const nexusOf = (n: number) =>
  new Nexus(`iqn.test:fuzz${n}`, `iqn.test:fuzz${n},i,0x00023d00000${n}`, 'iqn.2016-06.io.storkit:fuzz', 1);

/** A CDB mutated from a seed. */
const mutated = fc
  .record({
    seed: fc.integer({ min: 0, max: seeds.length - 1 }),
    edits: fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('set' as const), at: fc.nat(31), v: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(31), bit: fc.nat(7) }),
        fc.record({ kind: fc.constant('max' as const), at: fc.nat(31) }),
      ),
      { maxLength: 6 },
    ),
    // Transports hand over at least 16 bytes (iSCSI's BHS field, virtio-scsi's 32), more with an
    // Extended CDB AHS.
    len: fc.oneof(fc.constant(16), fc.constant(32), fc.integer({ min: 16, max: 40 })),
  })
  .map(({ seed, edits, len }) => {
    const base = seeds[seed];
    const out = new Uint8Array(len);
    out.set(base.subarray(0, Math.min(base.length, len)));
    for (const e of edits) {
      if (e.at >= out.length) continue;
      if (e.kind === 'set') out[e.at] = e.v;
      else if (e.kind === 'flip') out[e.at] ^= 1 << e.bit;
      else out[e.at] = 0xff;
    }
    return out;
  });

describe('scsi: CDB decoder fuzzing (libiscsi corpus)', function () {
  this.timeout(120_000);

  it(`the corpus: ${libiscsi.length} CDBs libiscsi sent, and the checks catch a bad I/O`, () => {
    expect(libiscsi.length).to.be.greaterThan(300);
    const ops = new Set(libiscsi.map((c) => c[0]));
    for (const op of [0x00, 0x12, 0x25, 0x28, 0x2a, 0x41, 0x42, 0x5e, 0x5f, 0x88, 0x89, 0x8a, 0x93, 0x9e])
      expect(ops.has(op), `opcode 0x${op.toString(16)}`).to.equal(true);
    // The backend's checks can fail: an I/O past the end and a short scatter list are recorded.
    const { ram } = device(512);
    ram.readv([new Uint8Array(512)], BLOCKS - 1, 2, () => {}, null);
    ram.writev([new Uint8Array(100)], 0, 1, () => {}, null);
    expect(ram.violations).to.have.length(3);
  });

  for (const bs of [512, 4096]) {
    it(`every corpus CDB completes once with a real status, ${bs}-byte blocks`, async () => {
      const { dev, ram } = device(bs);
      const n = nexusOf(1);
      for (const cdb of seeds) check(cdb, await runCdb(dev, n, cdb, new Uint8Array(bs * 4), bs * 4));
      expect(ram.violations).to.deep.equal([]);
    });
  }

  it('mutated CDBs with data-out of any size: one completion, a real status, sense, bounded data-in, no I/O outside the medium', async () => {
    let checks = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            cdb: mutated,
            out: fc.oneof(
              fc.constant(0),
              fc.constantFrom(8, 24, 512, 1024, 4096),
              fc.integer({ min: 0, max: 16384 }),
            ),
            expected: fc.oneof(fc.constantFrom(0, 512, 4096, 65536), fc.integer({ min: 0, max: 1 << 20 })),
            nexus: fc.integer({ min: 1, max: 2 }),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.constantFrom(512, 4096),
        async (cmds, bs) => {
          // A fresh LUN per sequence: reservations and unit attentions of one run stay in it.
          const { dev, ram } = device(bs);
          const nexi = [nexusOf(1), nexusOf(2)];
          for (const c of cmds) {
            const out = new Uint8Array(c.out).fill(0x5a);
            const o = await runCdb(dev, nexi[c.nexus - 1], c.cdb, out, c.expected);
            check(c.cdb, o);
            statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
            checks++;
          }
          expect(ram.violations).to.deep.equal([]);
        },
      ),
      { numRuns: 1500 },
    );
    // The fuzzer reached commands that succeed and commands that fail.
    expect(statuses.get(Status.Good) ?? 0).to.be.greaterThan(checks / 20);
    expect(statuses.get(Status.CheckCondition) ?? 0).to.be.greaterThan(checks / 20);
  });
});
