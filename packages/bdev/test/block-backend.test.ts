// BdevBlockBackend: the one adapter every target serves a bdev through. A "hold" bdev keeps the
// I/O it is given until the test completes it, so the channel's bdev_io pool can be drained and
// refilled exactly; the reactor harness is the only thing polled (no event-loop turns), so a
// retry that relied on setImmediate would never happen.
import { setContainedLog } from '@storkit/block';
import type { IoChannel } from '@storkit/reactor';
import { getIoChannel, ioDeviceRegister } from '@storkit/reactor';
import { expect } from 'chai';
import {
  BdevBlockBackend,
  BdevError,
  bdevGetIoChannel,
  bdevOpenExt,
  IoStatus,
  IoType,
} from '../src/index.js';
import {
  type Bdev,
  type BdevIo,
  bdevIoComplete,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
} from '../src/module.js';
import { harness } from './helpers.js';

const holdModule = { name: 'test_hold' };
bdevModuleRegister(holdModule);
const holdDevice = { name: 'test_hold' };
ioDeviceRegister(holdDevice, { name: 'test_hold', create: () => null });

interface Hold {
  bdev: Bdev;
  /** I/O the module was given and has not completed, oldest first. */
  held: BdevIo[];
  /** offsetBlocks of every I/O in the order it reached the module. */
  seen: number[];
}

function holdBdev(name: string, opts: { flush?: boolean; throwOn?: number } = {}): Hold {
  const h: Hold = { bdev: null as unknown as Bdev, held: [], seen: [] };
  h.bdev = bdevRegister({
    name,
    productName: 'hold',
    blockSize: 512,
    numBlocks: 1 << 20,
    module: holdModule,
    fn: {
      submitRequest: (_ch: IoChannel<unknown>, io: BdevIo) => {
        if (io.offsetBlocks === opts.throwOn) throw new TypeError('module bug on purpose');
        h.seen.push(io.offsetBlocks);
        h.held.push(io);
      },
      ioTypeSupported: (t) => t === IoType.READ || t === IoType.WRITE || (t === IoType.FLUSH && !!opts.flush),
      getIoChannel: () => getIoChannel(holdDevice),
      destruct: (done) => done(),
    },
  });
  return h;
}

function completeAll(h: Hold, n = h.held.length): void {
  for (const io of h.held.splice(0, n)) bdevIoComplete(io, IoStatus.SUCCESS);
}

describe('bdev: BdevBlockBackend', () => {
  let logged: string[];
  let prevLog: (l: string) => void;
  beforeEach(() => {
    logged = [];
    prevLog = setContainedLog((l) => logged.push(l));
  });
  afterEach(() => {
    setContainedLog(prevLog);
  });

  it('ENOMEM: 9 qpairs at QD 128 over 1024 bdev_ios keep submission order, polled by the reactor only', () => {
    const r = harness();
    const h = holdBdev('Hold0');
    r.pollThreads();
    const desc = bdevOpenExt('Hold0', true, () => {});
    const ch = bdevGetIoChannel(desc);
    expect(ch.ctx.poolSize).to.equal(1024);
    const be = new BdevBlockBackend(desc, ch);
    const buf = [new Uint8Array(512)];
    const QPAIRS = 9;
    const QD = 128;
    const TOTAL = 4 * QPAIRS * QD;
    let next = 0;
    let done = 0;
    let failed = 0;
    // Each "qpair" keeps its queue full: a completion submits its next command at once, as a host
    // at full queue depth does.
    const onDone = (s: IoStatus, qp: number): void => {
      done++;
      if (s !== IoStatus.SUCCESS) failed++;
      if (next < TOTAL) be.writev(buf, next++, 1, onDone, qp);
    };
    for (let qp = 0; qp < QPAIRS; qp++) for (let i = 0; i < QD; i++) be.writev(buf, next++, 1, onDone, qp);
    expect(h.held.length).to.equal(1024);
    expect(be.stats.held).to.equal(QPAIRS * QD - 1024);
    for (let round = 0; round < 10_000 && done < TOTAL; round++) {
      completeAll(h, 50);
      r.pollOnce();
    }
    expect(done).to.equal(TOTAL);
    expect(failed).to.equal(0);
    expect(h.seen).to.deep.equal(Array.from({ length: TOTAL }, (_, i) => i));
    expect(be.stats.nomemWaits).to.be.greaterThan(0);
    expect(be.stats.held).to.equal(0);
    expect(be.errors.count).to.equal(0);
    be.close();
    bdevUnregister(h.bdev);
    r.pollThreads();
  });

  it('an I/O the bdev layer refuses fails later, and is counted, kept and logged', async () => {
    const r = harness();
    const h = holdBdev('Hold1');
    r.pollThreads();
    const desc = bdevOpenExt('Hold1', true, () => {});
    const be = new BdevBlockBackend(desc, bdevGetIoChannel(desc));
    const got: IoStatus[] = [];
    const rec = (s: IoStatus, out: IoStatus[]): void => {
      out.push(s);
    };
    be.readv([new Uint8Array(512)], 1 << 20, 1, rec, got); // past the end: the target should have refused it
    be.readv([new Uint8Array(100)], 0, 1, rec, got); // buffers shorter than the blocks
    expect(got).to.deep.equal([]); // never inside the submitting call
    await new Promise((res) => setImmediate(res));
    expect(got).to.deep.equal([IoStatus.FAILED, IoStatus.FAILED]);
    expect(be.errors.count).to.equal(2);
    expect(be.errors.last).to.be.instanceOf(BdevError);
    expect((be.errors.last as BdevError).code).to.equal('EINVAL');
    expect(logged).to.have.length(1);
    expect(logged[0]).to.match(
      /bdev Hold1 backend: exception #1 failed its I\/O: BdevError: blocks 1048576\+1 outside bdev Hold1/,
    );
    expect(h.seen).to.deep.equal([]);
    be.close();
    bdevUnregister(h.bdev);
    r.pollThreads();
  });

  it("an exception from a module's submitRequest fails the I/O and is counted on the bdev", () => {
    const r = harness();
    const h = holdBdev('Hold2', { throwOn: 7 });
    r.pollThreads();
    const desc = bdevOpenExt('Hold2', true, () => {});
    const be = new BdevBlockBackend(desc, bdevGetIoChannel(desc));
    const got: IoStatus[] = [];
    be.writev([new Uint8Array(512)], 7, 1, (s: IoStatus, out: IoStatus[]) => out.push(s), got);
    r.pollThreads();
    expect(got).to.deep.equal([IoStatus.FAILED]);
    expect(h.bdev.submitErrors.count).to.equal(1);
    expect(h.bdev.submitErrors.last).to.be.instanceOf(TypeError);
    expect(logged.join('\n')).to.match(
      /bdev Hold2 \(test_hold\) submit: exception #1 .*module bug on purpose/,
    );
    be.close();
    bdevUnregister(h.bdev);
    r.pollThreads();
  });

  it('flush without a write cache succeeds later; close fails held I/O with ABORTED', async () => {
    const r = harness();
    const h = holdBdev('Hold3');
    r.pollThreads();
    const desc = bdevOpenExt('Hold3', true, () => {});
    const be = new BdevBlockBackend(desc, bdevGetIoChannel(desc));
    const got: IoStatus[] = [];
    const rec = (s: IoStatus, out: IoStatus[]): void => {
      out.push(s);
    };
    be.flush(0, 10, rec, got);
    for (let i = 0; i < 1030; i++) be.readv([new Uint8Array(512)], i, 1, rec, got);
    expect(be.stats.held).to.equal(6);
    await new Promise((res) => setImmediate(res));
    expect(got).to.deep.equal([IoStatus.SUCCESS]);
    be.close();
    await new Promise((res) => setImmediate(res));
    expect(got.slice(1)).to.deep.equal(new Array(6).fill(IoStatus.ABORTED));
    completeAll(h);
    r.pollThreads();
    expect(got.length).to.equal(1031);
    bdevUnregister(h.bdev);
    r.pollThreads();
  });
});
