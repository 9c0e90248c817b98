// bdev_passthru: a bdev that forwards every I/O to its base unchanged (SPDK's example vbdev).
import type { IoChannel } from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import {
  bdevGetByName,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { IoType } from '../types.js';
import { type Created, ParamReader } from './params.js';
import {
  type BaseChannels,
  baseSupports,
  forward,
  openBase,
  registerVbdevDevice,
  releaseVbdev,
} from './vbdev.js';

/** bdev_passthru_create params (SPDK schema). */
export interface PassthruCreateParams {
  base_bdev_name: string;
  name: string;
  uuid?: string;
}

/** One configured passthru bdev: its config, the claimed base and the bdev once built. */
interface Passthru {
  cfg: PassthruCreateParams;
  desc: BdevDesc | null;
  bdev: Bdev | null;
  key: object;
}

const configs = new Map<string, Passthru>();

export const passthruModule: BdevModule = {
  name: 'passthru',
  examine(bdev) {
    for (const pt of configs.values()) if (pt.cfg.base_bdev_name === bdev.name && pt.bdev === null) build(pt);
  },
};
bdevModuleRegister(passthruModule);

function submit(ch: IoChannel<unknown>, io: BdevIo): void {
  const pt = io.bdev.ctx as Passthru;
  const c = (ch.ctx as BaseChannels).chans[0];
  if (c === null || pt.desc === null) throw new BdevError('ENODEV', 'passthru base is gone');
  forward(pt.desc, c, io, 0);
}

function build(pt: Passthru): void {
  const desc = openBase(pt.cfg.base_bdev_name, passthruModule, () => {
    if (pt.bdev !== null && !pt.bdev.isRemoving) bdevUnregister(pt.bdev);
  });
  pt.desc = desc;
  const base = desc.bdev;
  const getCh = registerVbdevDevice(pt.key, `vbdev_passthru/${pt.cfg.name}`, () => [pt.desc]);
  pt.bdev = bdevRegister({
    name: pt.cfg.name,
    uuid: pt.cfg.uuid,
    productName: 'passthru',
    blockSize: base.blockSize,
    numBlocks: base.numBlocks,
    writeCache: base.writeCache,
    optimalIoBoundary: base.optimalIoBoundary,
    splitOnOptimalIoBoundary: base.splitOnOptimalIoBoundary,
    maxRwBlocks: base.maxRwBlocks,
    maxSegments: base.maxSegments,
    maxSegmentSize: base.maxSegmentSize,
    module: passthruModule,
    ctx: pt,
    fn: {
      submitRequest: submit,
      ioTypeSupported: (t) => t !== IoType.COMPARE_AND_WRITE && baseSupports(base, t),
      getIoChannel: getCh,
      destruct: (done) => {
        const d = pt.desc;
        pt.desc = null;
        pt.bdev = null;
        releaseVbdev(pt.key, [d], done);
      },
      dumpInfoJson: () => ({ passthru: { name: pt.cfg.name, base_bdev_name: pt.cfg.base_bdev_name } }),
    },
  });
  pt.cfg.uuid = pt.bdev.uuid;
}

/** bdev_passthru_create: made now, or when the base appears. Returns the name and replay params. */
export function bdevPassthruCreate(params: PassthruCreateParams): Created<PassthruCreateParams> {
  requireThread('bdev_passthru_create');
  const r = new ParamReader('bdev_passthru_create', params);
  r.only(['base_bdev_name', 'name', 'uuid']);
  const cfg: PassthruCreateParams = {
    base_bdev_name: r.str('base_bdev_name'),
    name: r.str('name'),
    uuid: r.uuid('uuid'),
  };
  if (configs.has(cfg.name) || bdevGetByName(cfg.name) !== undefined) {
    throw new BdevError('EEXIST', `bdev_passthru_create: ${cfg.name} exists`);
  }
  const pt: Passthru = { cfg, desc: null, bdev: null, key: {} };
  if (bdevGetByName(cfg.base_bdev_name) !== undefined) build(pt);
  configs.set(cfg.name, pt);
  return { name: cfg.name, replay: { ...cfg } };
}

/** bdev_passthru_delete. */
export function bdevPassthruDelete(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_passthru_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const pt = configs.get(name);
  if (pt === undefined) throw new BdevError('ENODEV', `bdev_passthru_delete: no passthru bdev ${name}`);
  configs.delete(name);
  if (pt.bdev === null) requireThread('bdev_passthru_delete').sendMsg(() => done?.());
  else bdevUnregister(pt.bdev, () => done?.());
}
