// Verified writers for the fault campaign, one per target protocol, each driven by a Ledger:
// - NVMe/TCP: storkit's host (an I/O qpair; writes with and without FUA, Flush),
// - iSCSI: QEMU's qemu-io over libiscsi (an initiator storkit did not write), one command at a
//   time on its stdin, `write -s FILE [-f]` for stamped data (with FUA), `flush`, and qemu-img to
//   read the whole LUN back,
// - vhost-user-blk: storkit's virtio-user initiator (VIRTIO_BLK_T_OUT and T_FLUSH).
// A writer keeps at most one write per block in flight (two in flight to one block may land in
// either order) and flushes every `flushEvery` acknowledged writes.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

import { IoStatus } from '@storkit/block';
import { type HostQpair, NvmeController } from '@storkit/nvme';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';
import { VirtioUserBlk } from '@storkit/vhost';

import type { Ledger, VerifyResult } from './ledger.js';

const run = promisify(execFile);

export interface WriterStats {
  writes: number;
  fua: number;
  flushes: number;
  /** Operations that failed or never completed once the target died (expected at a crash). */
  failed: number;
}

/** One protocol's view of a disk: submit a write (FUA or not) or a flush; resolves true on success. */
export interface BlockClient {
  readonly name: string;
  readonly blockSize: number;
  write(lba: number, data: Uint8Array, fua: boolean): Promise<boolean>;
  flush(): Promise<boolean>;
  /** Read `lba` (after a restart, for the check). */
  read(lba: number): Promise<Uint8Array>;
  /** Drop the connection at once (the target is gone, or the round is over). */
  abandon(): Promise<void>;
}

/**
 * Write random blocks of [0, blocks) with `depth` in flight until `stop()`; every `flushEvery`
 * acknowledged writes, a flush; one write in `fuaEvery` with FUA.
 */
export function writeLoop(
  c: BlockClient,
  ledger: Ledger,
  o: { blocks: number; depth: number; flushEvery: number; fuaEvery: number; seed: number },
): { stop(): Promise<WriterStats>; stats: WriterStats } {
  const stats: WriterStats = { writes: 0, fua: 0, flushes: 0, failed: 0 };
  const busy = new Set<number>();
  let x = o.seed >>> 0 || 1;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  let stopping = false;
  let sinceFlush = 0;
  let flushing: Promise<void> | null = null;
  const doFlush = async () => {
    const covered = ledger.flushBegin();
    if (await c.flush().catch(() => false)) {
      ledger.flushAcked(covered);
      stats.flushes++;
    } else {
      ledger.flushLost(covered);
      stats.failed++;
    }
  };
  const worker = async () => {
    while (!stopping) {
      let lba = rnd(o.blocks);
      for (let i = 0; busy.has(lba) && i < o.blocks; i++) lba = (lba + 1) % o.blocks;
      if (busy.has(lba)) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      busy.add(lba);
      const data = new Uint8Array(c.blockSize);
      const gen = ledger.begin(lba, data);
      const fua = o.fuaEvery > 0 && rnd(o.fuaEvery) === 0;
      const ok = await c.write(lba, data, fua).catch(() => false);
      busy.delete(lba);
      if (!ok) {
        stats.failed++;
        // The target is going away: this writer's part of the round is over.
        return;
      }
      ledger.acked(lba, gen, fua);
      stats.writes++;
      if (fua) stats.fua++;
      if (++sinceFlush >= o.flushEvery && flushing === null) {
        sinceFlush = 0;
        flushing = doFlush().finally(() => {
          flushing = null;
        });
      }
    }
  };
  const workers = Array.from({ length: o.depth }, worker);
  return {
    stats,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      await flushing;
      return stats;
    },
  };
}

/** Read back every block the ledger knows through `c` and check it. */
export async function verify(c: BlockClient, ledger: Ledger): Promise<VerifyResult> {
  const out: VerifyResult = { blocks: 0, errors: [], lostUnflushed: 0, torn: 0 };
  for (const lba of ledger.lbas) ledger.check(lba, await readRetry(c, lba), out);
  return out;
}

/** A read that failed is tried twice more (a loaded machine can time one out): the check needs the data. */
async function readRetry(c: BlockClient, lba: number): Promise<Uint8Array> {
  for (let i = 0; ; i++) {
    try {
      return await c.read(lba);
    } catch (e) {
      if (i >= 2) throw e;
    }
  }
}

/** Operations in flight; at a crash the ones never answered resolve as not acknowledged. */
class Pending {
  readonly #set = new Set<(ok: boolean) => void>();
  add(start: (done: (ok: boolean) => void) => void): Promise<boolean> {
    return new Promise((res) => {
      let settled = false;
      const done = (ok: boolean) => {
        if (settled) return;
        settled = true;
        this.#set.delete(done);
        res(ok);
      };
      this.#set.add(done);
      start(done);
    });
  }
  failAll(): void {
    for (const d of [...this.#set]) d(false);
  }
}

// ---- NVMe/TCP: storkit's host

const NVME_WRITE = 0x01;
const FUA = 1 << 30;

export class NvmeClient implements BlockClient {
  readonly name = 'nvme-tcp';
  readonly blockSize: number;
  readonly #c: NvmeController;
  readonly #qp: HostQpair;
  #poll: NodeJS.Timeout;

  private constructor(c: NvmeController, qp: HostQpair, blockSize: number) {
    this.#c = c;
    this.#qp = qp;
    this.blockSize = blockSize;
    this.#poll = setInterval(() => qp.processCompletions(), 1);
  }

  static async connect(trid: string, timeoutMs = 30_000): Promise<NvmeClient> {
    const c = await NvmeController.connect(trid, { timeoutMs });
    const ns = await c.identifyNamespace(1);
    const qp = await c.allocIoQpair({ depth: 32 });
    return new NvmeClient(c, qp, ns.blockSize);
  }

  readonly #pending = new Pending();

  #io(submit: (cb: (x: null, st: number) => void) => boolean): Promise<boolean> {
    return this.#pending.add((done) => {
      if (!submit((_x, st) => done(st === 0))) done(false);
    });
  }

  write(lba: number, data: Uint8Array, fua: boolean): Promise<boolean> {
    if (!fua) return this.#io((cb) => this.#qp.write(1, lba, 1, data, cb, null));
    return this.#io((cb) =>
      this.#qp.submit(
        { opcode: NVME_WRITE, nsid: 1, cdw10: lba, cdw11: 0, cdw12: FUA, buf: data, dir: 1 },
        cb,
        null,
      ),
    );
  }

  flush(): Promise<boolean> {
    return this.#io((cb) => this.#qp.flush(1, cb, null));
  }

  async read(lba: number): Promise<Uint8Array> {
    const b = new Uint8Array(this.blockSize);
    if (!(await this.#io((cb) => this.#qp.read(1, lba, 1, b, cb, null))))
      throw new Error(`nvme read of block ${lba} failed`);
    return b;
  }

  async abandon(): Promise<void> {
    clearInterval(this.#poll);
    this.#qp.close();
    await this.#c.close().catch(() => {});
    this.#pending.failAll();
  }
}

// ---- iSCSI: qemu-io (libiscsi)

/**
 * qemu-io prints this before it reads each command line, so it also ends the previous command's
 * output. It reads stdin with stdio's fgets, but waits for the next line by polling the fd: a
 * second line that arrived in the same pipe read sits in stdio's buffer, unseen, until more bytes
 * come. So exactly one command may be in the pipe at a time: the next is written only after this
 * prompt came back.
 */
const PROMPT = 'qemu-io> ';

export class QemuIoClient implements BlockClient {
  readonly name = 'iscsi';
  readonly blockSize: number;
  readonly #p: ChildProcess;
  readonly #url: string;
  readonly #pattern: string;
  #out = '';
  /** The command whose output is being collected: resolves with that output at the next prompt. */
  #waiter: ((out: string | null) => void) | null = null;
  /** Commands run strictly one after the other (see PROMPT). */
  #queue: Promise<unknown> = Promise.resolve();
  #dead = false;

  private constructor(p: ChildProcess, url: string, blockSize: number, pattern: string) {
    this.#p = p;
    this.#url = url;
    this.blockSize = blockSize;
    this.#pattern = pattern;
    p.stdout!.on('data', (d) => this.#feed(String(d)));
    p.stderr!.on('data', (d) => this.#feed(String(d)));
    p.stdin!.on('error', () => {});
    p.on('exit', () => {
      this.#dead = true;
      const w = this.#waiter;
      this.#waiter = null;
      w?.(null);
    });
  }

  static async open(url: string, blockSize: number, pattern: string): Promise<QemuIoClient> {
    const p = spawn('qemu-io', ['-f', 'raw', url], { stdio: ['pipe', 'pipe', 'pipe'] });
    const c = new QemuIoClient(p, url, blockSize, pattern);
    // The first prompt comes once the image is open (qemu-io exits if it cannot open it).
    const ready = await new Promise<string | null>((res) => {
      c.#waiter = res;
      c.#feed('');
    });
    if (ready === null) throw new Error(`qemu-io could not open ${url}: ${c.#out}`);
    return c;
  }

  #feed(s: string): void {
    this.#out += s;
    const at = this.#out.indexOf(PROMPT);
    if (at < 0 || !this.#waiter) return;
    const out = this.#out.slice(0, at);
    this.#out = this.#out.slice(at + PROMPT.length);
    const w = this.#waiter;
    this.#waiter = null;
    w(out);
  }

  /** Run one command once every earlier one has answered; its output, or null if qemu-io died. */
  #cmd(line: string, before?: () => void): Promise<string | null> {
    const run = this.#queue.then(
      () =>
        new Promise<string | null>((res) => {
          if (this.#dead) return res(null);
          before?.();
          this.#waiter = res;
          this.#p.stdin!.write(`${line}\n`);
        }),
    );
    this.#queue = run;
    return run;
  }

  async write(lba: number, data: Uint8Array, fua: boolean): Promise<boolean> {
    const off = lba * this.blockSize;
    // qemu-io reads the pattern file when the command runs: write it just before sending.
    const out = await this.#cmd(`write ${fua ? '-f ' : ''}-s ${this.#pattern} ${off} ${this.blockSize}`, () =>
      writeFileSync(this.#pattern, data),
    );
    return out?.includes(`wrote ${this.blockSize}/${this.blockSize} bytes at offset ${off}\n`) ?? false;
  }

  async flush(): Promise<boolean> {
    // `flush` prints only on failure ("flush failed: ..."); the prompt after it says it is done.
    const out = await this.#cmd('flush');
    return out !== null && !/fail|error/i.test(out);
  }

  /** Read the whole LUN with qemu-img (libiscsi again) and serve blocks from the copy. */
  #image: Buffer | null = null;
  async read(lba: number): Promise<Uint8Array> {
    if (!this.#image) {
      const file = `${this.#pattern}.img`;
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', this.#url, file], { timeout: 60_000 });
      this.#image = readFileSync(file);
    }
    return this.#image.subarray(lba * this.blockSize, (lba + 1) * this.blockSize);
  }

  async abandon(): Promise<void> {
    if (!this.#dead) {
      this.#p.kill('SIGKILL');
      await new Promise((r) => this.#p.once('exit', r));
    }
  }
}

// ---- vhost-user-blk: storkit's virtio-user initiator

// The initiator runs on a reactor thread: this process has one, polled by the clients' timers.
let harness: TestHarness | null = null;
function pump(): void {
  harness ??= createTestHarness({ reactors: 1 });
  harness.advanceTime(250);
  harness.pollOnce();
}

export class VhostClient implements BlockClient {
  readonly name = 'vhost-blk';
  readonly blockSize: number;
  readonly #d: VirtioUserBlk;
  #poll: NodeJS.Timeout;

  private constructor(d: VirtioUserBlk) {
    this.#d = d;
    this.blockSize = d.blockSize;
    this.#poll = setInterval(() => {
      pump();
      d.poll();
    }, 1);
  }

  static async attach(path: string): Promise<VhostClient> {
    pump();
    return new VhostClient(
      await VirtioUserBlk.attach({ path, name: 'Faults0', queueSize: 32, timeoutMs: 30_000, pump }),
    );
  }

  readonly #pending = new Pending();

  #io(submit: (cb: (st: number) => void) => void): Promise<boolean> {
    return this.#pending.add((done) => {
      try {
        submit((st) => done(st === IoStatus.SUCCESS));
      } catch {
        done(false);
      }
    });
  }

  write(lba: number, data: Uint8Array): Promise<boolean> {
    return this.#io((cb) => this.#d.writev([data], lba, 1, cb, null));
  }

  flush(): Promise<boolean> {
    return this.#io((cb) => this.#d.flush(0, 0, cb, null));
  }

  async read(lba: number): Promise<Uint8Array> {
    const b = new Uint8Array(this.blockSize);
    if (!(await this.#io((cb) => this.#d.readv([b], lba, 1, cb, null))))
      throw new Error(`vhost read of block ${lba} failed`);
    return b;
  }

  async abandon(): Promise<void> {
    clearInterval(this.#poll);
    this.#d.detach();
    // What the dead target never answered is not acknowledged.
    this.#pending.failAll();
  }
}
