// bdev_split: cut a base bdev into equal parts ("<base>p0", "<base>p1", ...). A config naming a
// base that does not exist yet is kept and applied when the base appears (examine).
import type { IoChannel } from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import {
  bdevClose,
  bdevGetByName,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { IoType } from '../types.js';
import { deriveUuid } from './derived-uuid.js';
import { ParamReader } from './params.js';
import {
  type BaseChannels,
  baseSupports,
  forward,
  openBase,
  registerVbdevDevice,
  releaseVbdev,
} from './vbdev.js';

/** bdev_split_create params (SPDK schema). */
export interface SplitCreateParams {
  base_bdev: string;
  split_count: number;
  /** Size of each part in MiB (0 or absent: the base divided evenly). */
  split_size_mb?: number;
}

interface SplitBase {
  cfg: SplitCreateParams;
  desc: BdevDesc | null;
  parts: Bdev[];
  key: object;
  refs: number;
}

export const splitModule: BdevModule = {
  name: 'split',
  examine(bdev) {
    const s = configs.get(bdev.name);
    if (s !== undefined && s.desc === null) build(s);
  },
};
bdevModuleRegister(splitModule);

const configs = new Map<string, SplitBase>();

interface Part {
  base: SplitBase;
  offset: number;
}

function submit(ch: IoChannel<unknown>, io: BdevIo): void {
  const p = io.bdev.ctx as Part;
  const c = (ch.ctx as BaseChannels).chans[0];
  if (c === null || p.base.desc === null) throw new BdevError('ENODEV', 'split base is gone');
  forward(p.base.desc, c, io, p.offset);
}

function build(s: SplitBase): string[] {
  const baseName = s.cfg.base_bdev;
  const desc = openBase(baseName, splitModule, () => {
    for (const part of [...s.parts]) if (!part.isRemoving) bdevUnregister(part);
  });
  s.desc = desc;
  const base = desc.bdev;
  const count = s.cfg.split_count;
  const sizeMb = s.cfg.split_size_mb ?? 0;
  let partBlocks = sizeMb > 0 ? (sizeMb * 1024 * 1024) / base.blockSize : Math.floor(base.numBlocks / count);
  if (!Number.isInteger(partBlocks) || partBlocks < 1) partBlocks = 0;
  if (partBlocks === 0 || partBlocks * count > base.numBlocks) {
    bdevClose(desc);
    s.desc = null;
    throw new BdevError(
      'EINVAL',
      `bdev_split_create: ${count} parts of ${partBlocks} blocks do not fit ${baseName} (${base.numBlocks} blocks)`,
    );
  }
  const getCh = registerVbdevDevice(s.key, `vbdev_split/${baseName}`, () => [s.desc]);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const part: Part = { base: s, offset: i * partBlocks };
    const name = `${baseName}p${i}`;
    s.refs++;
    const b = bdevRegister({
      name,
      // Derived, so every reactor's instance and every reload of the config agree.
      uuid: deriveUuid(base.uuid, `split/${i}`),
      productName: 'Split Disk',
      blockSize: base.blockSize,
      numBlocks: partBlocks,
      writeCache: base.writeCache,
      optimalIoBoundary: base.optimalIoBoundary,
      splitOnOptimalIoBoundary: base.splitOnOptimalIoBoundary,
      maxRwBlocks: base.maxRwBlocks,
      maxSegments: base.maxSegments,
      maxSegmentSize: base.maxSegmentSize,
      module: splitModule,
      ctx: part,
      fn: {
        submitRequest: submit,
        ioTypeSupported: (t) => t !== IoType.COMPARE_AND_WRITE && baseSupports(base, t),
        getIoChannel: getCh,
        destruct: (done) => {
          s.parts.splice(s.parts.indexOf(b), 1);
          if (--s.refs === 0) {
            const d = s.desc;
            s.desc = null;
            releaseVbdev(s.key, [d], done);
          } else done();
        },
        dumpInfoJson: () => ({ split: { base_bdev: baseName, offset_blocks: part.offset } }),
      },
    });
    s.parts.push(b);
    names.push(name);
  }
  return names;
}

/**
 * bdev_split_create: returns the names of the parts made now (none when the base does not exist
 * yet: they are made when it appears).
 */
export function bdevSplitCreate(params: SplitCreateParams): string[] {
  requireThread('bdev_split_create');
  const r = new ParamReader('bdev_split_create', params);
  r.only(['base_bdev', 'split_count', 'split_size_mb']);
  const base = r.str('base_bdev');
  const cfg: SplitCreateParams = {
    base_bdev: base,
    split_count: r.int('split_count', { min: 1, max: 1024 }),
    split_size_mb: r.int('split_size_mb', { min: 0, def: 0 }),
  };
  if (configs.has(base)) throw new BdevError('EEXIST', `bdev_split_create: ${base} is already split`);
  const s: SplitBase = { cfg, desc: null, parts: [], key: {}, refs: 0 };
  if (bdevGetByName(base) === undefined) {
    configs.set(base, s);
    return [];
  }
  const names = build(s);
  configs.set(base, s);
  return names;
}

/** bdev_split_delete: remove every part of `base_bdev` and forget the config. */
export function bdevSplitDelete(params: { base_bdev: string }, done?: () => void): void {
  const r = new ParamReader('bdev_split_delete', params);
  r.only(['base_bdev']);
  const base = r.str('base_bdev');
  const s = configs.get(base);
  if (s === undefined) throw new BdevError('ENODEV', `bdev_split_delete: ${base} is not split`);
  configs.delete(base);
  let left = s.parts.length;
  if (left === 0) {
    requireThread('bdev_split_delete').sendMsg(() => done?.());
    return;
  }
  for (const p of [...s.parts]) {
    bdevUnregister(p, () => {
      if (--left === 0) done?.();
    });
  }
}
