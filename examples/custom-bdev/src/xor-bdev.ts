// A bdev module of your own: `xor`, a virtual bdev that stores every byte XORed with a one-byte key on
// a base bdev (a toy cipher: what reaches the base is scrambled, what reads return is the original).
// Written against @storkit/bdev/module alone (SPDK's bdev_module.h), the way the built-in passthru is:
// an examine hook, a claim on the base, a per-thread channel to it, a function table. It runs in every
// reactor: each creates its own instance under the same name and uuid.
import {
  type BaseChannels,
  type Bdev,
  type BdevDesc,
  BdevError,
  type BdevIo,
  type BdevModule,
  bdevGetByName,
  bdevIoComplete,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  ENOMEM,
  IoStatus,
  IoType,
  openBase,
  registerVbdevDevice,
  releaseVbdev,
  submitToBase,
} from '@storkit/bdev/module';
import type { IoChannel } from '@storkit/reactor';

/** bdev_xor_create params, SPDK style. */
export interface XorCreateParams {
  name: string;
  base_bdev_name: string;
  /** The byte every stored byte is XORed with (0-255). */
  key: number;
  /** Given when the bdev is replayed on the other reactors (the same bdev everywhere). */
  uuid?: string;
}

interface Xor {
  cfg: XorCreateParams;
  desc: BdevDesc | null;
  bdev: Bdev | null;
  /** The io_device of its channels to the base. */
  key: object;
}

/** Largest I/O the bdev accepts; the bdev layer splits bigger ones (bounds the bounce buffers). */
const MAX_IO_BYTES = 128 * 1024;

/** Per bdev_io context (SPDK's get_ctx_size): a write's bounce buffer, grown once, then reused. */
interface IoCtx {
  bounce: Uint8Array;
  view: Uint8Array[];
}

export const xorModule: BdevModule = {
  name: 'xor',
  // A bdev_xor_create may come before its base exists (a config's order, a hot-added disk).
  examine(bdev) {
    for (const x of xors.values()) if (x.cfg.base_bdev_name === bdev.name && x.bdev === null) build(x);
  },
};
bdevModuleRegister(xorModule);
const xors = new Map<string, Xor>();

/** XOR `len` bytes of `src` (a list of buffers) into `dst`, or in place when `dst` is null. */
function xorInto(src: readonly Uint8Array[], dst: Uint8Array | null, key: number, len: number): void {
  let o = 0;
  for (let i = 0; i < src.length && o < len; i++) {
    const b = src[i];
    const n = Math.min(b.length, len - o);
    if (dst === null) for (let j = 0; j < n; j++) b[j] ^= key;
    else for (let j = 0; j < n; j++) dst[o + j] = b[j] ^ key;
    o += n;
  }
}

/** The base answered: a read is decoded in the caller's buffers; either way the I/O completes. */
function baseDone(status: IoStatus, io: BdevIo): void {
  if (status === IoStatus.SUCCESS && io.type === IoType.READ) {
    const x = io.bdev.ctx as Xor;
    xorInto(io.iovs, null, x.cfg.key, io.numBlocks * io.bdev.blockSize);
  }
  bdevIoComplete(io, status);
}

function submit(ch: IoChannel<unknown>, io: BdevIo): void {
  const x = io.bdev.ctx as Xor;
  const base = (ch.ctx as BaseChannels).chans[0];
  if (base === null || x.desc === null) throw new BdevError('ENODEV', `xor ${x.cfg.name}: its base is gone`);
  let iovs = io.iovs;
  if (io.type === IoType.WRITE) {
    // Never scramble the caller's buffers: encode into this bdev_io's own buffer.
    const len = io.numBlocks * io.bdev.blockSize;
    const c = io.driverCtx as IoCtx;
    if (c.bounce.length < len) c.bounce = new Uint8Array(MAX_IO_BYTES);
    xorInto(io.iovs, c.bounce, x.cfg.key, len);
    c.view[0] = c.bounce.subarray(0, len);
    iovs = c.view;
  }
  const rc = submitToBase(x.desc, base, io, io.offsetBlocks, io.numBlocks, iovs, baseDone, io);
  // No free bdev_io on the base's channel: NOMEM makes the bdev layer retry this I/O later.
  if (rc === ENOMEM) bdevIoComplete(io, IoStatus.NOMEM);
}

function build(x: Xor): void {
  x.desc = openBase(x.cfg.base_bdev_name, xorModule, () => {
    if (x.bdev !== null && !x.bdev.isRemoving) bdevUnregister(x.bdev);
  });
  const base = x.desc.bdev;
  const getIoChannel = registerVbdevDevice(x.key, `vbdev_xor/${x.cfg.name}`, () => [x.desc]);
  x.bdev = bdevRegister({
    name: x.cfg.name,
    uuid: x.cfg.uuid,
    productName: 'xor',
    blockSize: base.blockSize,
    numBlocks: base.numBlocks,
    writeCache: base.writeCache,
    maxRwBlocks: Math.min(base.maxRwBlocks || Number.MAX_SAFE_INTEGER, MAX_IO_BYTES / base.blockSize),
    module: xorModule,
    ctx: x,
    fn: {
      submitRequest: submit,
      // Zeroes or unmapped blocks would read back as the key: only I/O that goes through the XOR.
      ioTypeSupported: (t) =>
        (t === IoType.READ || t === IoType.WRITE || t === IoType.FLUSH || t === IoType.RESET) &&
        base.ioTypeSupported(t),
      getIoChannel,
      createIoCtx: (): IoCtx => ({ bounce: new Uint8Array(0), view: [new Uint8Array(0)] }),
      destruct: (done) => {
        const d = x.desc;
        x.desc = null;
        x.bdev = null;
        releaseVbdev(x.key, [d], done);
      },
      dumpInfoJson: () => ({
        xor: { name: x.cfg.name, base_bdev_name: x.cfg.base_bdev_name, key: x.cfg.key },
      }),
    },
  });
  x.cfg.uuid = x.bdev.uuid;
}

/** bdev_xor_create on this reactor: made now, or when its base appears. */
export function bdevXorCreate(params: XorCreateParams): { name: string; replay: XorCreateParams } {
  const { name, base_bdev_name, key, uuid } = params;
  if (!Number.isInteger(key) || key < 0 || key > 255) throw new BdevError('EINVAL', 'key must be 0-255');
  if (xors.has(name) || bdevGetByName(name) !== undefined)
    throw new BdevError('EEXIST', `bdev ${name} exists`);
  const x: Xor = { cfg: { name, base_bdev_name, key, uuid }, desc: null, bdev: null, key: {} };
  if (bdevGetByName(base_bdev_name) !== undefined) build(x);
  xors.set(name, x);
  return { name, replay: { ...x.cfg } };
}

/** bdev_xor_delete on this reactor; `done` once the bdev is gone. */
export function bdevXorDelete(params: { name: string }, done: () => void): void {
  const x = xors.get(params.name);
  if (x === undefined) throw new BdevError('ENODEV', `no xor bdev ${params.name}`);
  xors.delete(params.name);
  if (x.bdev === null) done();
  else bdevUnregister(x.bdev, done);
}
