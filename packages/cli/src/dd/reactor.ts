// storkit dd's reactor side (the main module of a one-reactor app): applies the config's bdev
// section, waits for examine (lvstores are found then), and copies between files and bdevs with a
// few requests in flight, reporting progress to the main thread. File I/O goes through node:fs's
// promise API (libuv's thread pool), never blocking the reactor; bdev I/O through the bdev layer.
import { open } from 'node:fs/promises';
import {
  type BdevDesc,
  bdevClose,
  bdevGetByName,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevRead,
  bdevWaitForExamine,
  bdevWrite,
  IoStatus,
} from '@storkit/bdev';
import { applyBdevConfig, bdevCalls } from '@storkit/bdev/modules';
import { appReport, appStop, getThread, type Thread } from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';

export interface DdArgs {
  config: unknown;
  inFile?: string;
  inBdev?: string;
  outFile?: string;
  outBdev?: string;
  bs: number;
  count?: number;
  skip: number;
  seek: number;
  qd: number;
}

export type DdReport =
  | { type: 'start'; total: number }
  | { type: 'progress'; copied: number; total: number }
  | { type: 'done'; copied: number; total: number; seconds: number }
  | { type: 'error'; message: string };

interface End {
  size(): number;
  read(buf: Uint8Array, off: number): Promise<void>;
  write(buf: Uint8Array, off: number): Promise<void>;
  close(): Promise<void>;
}

function resume<T>(t: Thread, p: Promise<T>): Promise<T> {
  return p.finally(() => setCurrentThread(t));
}

async function fileEnd(t: Thread, path: string, write: boolean): Promise<End> {
  const fh = await resume(
    t,
    open(path, write ? 'a+' : 'r').then((f) => (write ? f.close().then(() => open(path, 'r+')) : f)),
  );
  const st = await resume(t, fh.stat());
  return {
    size: () => st.size,
    async read(buf, off) {
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await resume(t, fh.read(buf, done, buf.length - done, off + done));
        if (bytesRead === 0) {
          buf.fill(0, done);
          return;
        }
        done += bytesRead;
      }
    },
    async write(buf, off) {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await resume(t, fh.write(buf, done, buf.length - done, off + done));
        done += bytesWritten;
      }
    },
    close: () => resume(t, fh.close()),
  };
}

function bdevEnd(t: Thread, name: string, write: boolean): End {
  const b = bdevGetByName(name);
  if (b === undefined) throw new Error(`no bdev ${name}`);
  const desc: BdevDesc = bdevOpenExt(name, write, () => {});
  const ch = bdevGetIoChannel(desc);
  // A last piece shorter than a block goes as a whole block (zero-padded on write), as spdk_dd does.
  const io = (w: boolean, buf: Uint8Array, off: number) =>
    new Promise<void>((res, rej) => {
      const bs = desc.bdev.blockSize;
      if (off % bs !== 0)
        throw new Error(`${name}: offset ${off} is not a multiple of its ${bs}-byte blocks`);
      const whole = buf.length % bs === 0 ? buf : new Uint8Array(Math.ceil(buf.length / bs) * bs);
      if (w && whole !== buf) whole.set(buf);
      const cb = (st: IoStatus) => {
        if (st !== IoStatus.SUCCESS) return rej(new Error(`${name}: I/O failed (status ${st})`));
        if (!w && whole !== buf) buf.set(whole.subarray(0, buf.length));
        res();
      };
      const rc = (w ? bdevWrite : bdevRead)(desc, ch, whole, off / bs, whole.length / bs, cb, null);
      if (rc !== 0) rej(new Error(`${name}: no bdev_io free`));
    });
  return {
    size: () => desc.bdev.numBlocks * desc.bdev.blockSize,
    read: (buf, off) => resume(t, io(false, buf, off)),
    write: (buf, off) => resume(t, io(true, buf, off)),
    close: async () => {
      ch.put();
      await resume(t, new Promise<void>((res) => t.sendMsg(res)));
      bdevClose(desc);
    },
  };
}

/** Runs on the app thread (reactor 0). */
export default async function dd(a: DdArgs): Promise<void> {
  const t = getThread() as Thread;
  let src: End | null = null;
  let dst: End | null = null;
  try {
    await applyBdevConfig(bdevCalls(a.config));
    setCurrentThread(t);
    await resume(t, new Promise<void>((res) => bdevWaitForExamine(res)));
    src = a.inBdev !== undefined ? bdevEnd(t, a.inBdev, false) : await fileEnd(t, a.inFile as string, false);
    dst = a.outBdev !== undefined ? bdevEnd(t, a.outBdev, true) : await fileEnd(t, a.outFile as string, true);
    const start = a.skip * a.bs;
    const avail = Math.max(0, src.size() - start);
    const total = a.count !== undefined ? Math.min(a.count * a.bs, avail) : avail;
    if (a.outBdev !== undefined && a.seek * a.bs + total > dst.size())
      throw new Error(
        `${a.outBdev}: ${total} bytes at offset ${a.seek * a.bs} do not fit its ${dst.size()} bytes`,
      );
    appReport({ type: 'start', total } satisfies DdReport);
    const t0 = performance.now();
    let copied = 0;
    let next = 0;
    let lastReport = t0;
    const s = src;
    const d = dst;
    const worker = async () => {
      while (next < total) {
        const off = next;
        const n = Math.min(a.bs, total - off);
        next += n;
        const buf = new Uint8Array(n);
        await s.read(buf, start + off);
        await d.write(buf, a.seek * a.bs + off);
        copied += n;
        const now = performance.now();
        if (now - lastReport >= 1000) {
          lastReport = now;
          appReport({ type: 'progress', copied, total } satisfies DdReport);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, a.qd) }, worker));
    setCurrentThread(t);
    appReport({ type: 'done', copied, total, seconds: (performance.now() - t0) / 1000 } satisfies DdReport);
  } catch (e) {
    setCurrentThread(t);
    appReport({ type: 'error', message: (e as Error).message } satisfies DdReport);
  } finally {
    setCurrentThread(t);
    try {
      await src?.close();
      await dst?.close();
    } catch {
      // closing after a failure
    }
    setCurrentThread(t);
    appStop(0);
    setCurrentThread(null);
  }
}
