// bdev_null: discards writes, reads leave the buffers as they are; for measuring the stack itself.
import type { IoChannel } from '@storkit/reactor';
import type { BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import { BdevError } from '../errors.js';
import { bdevIoComplete } from '../io-path.js';
import {
  bdevGetByName,
  bdevModuleRegister,
  bdevNotifyBlockcntChange,
  bdevRegister,
  bdevUnregister,
} from '../registry.js';
import { IoStatus, IoType } from '../types.js';
import { moduleChannel } from './channel-device.js';
import { type Created, ParamReader } from './params.js';

/** bdev_null_create params (SPDK schema). */
export interface NullCreateParams {
  name: string;
  num_blocks: number;
  block_size: number;
  physical_block_size?: number;
  uuid?: string;
  md_size?: number;
  dif_type?: number;
  dif_is_head_of_md?: boolean;
}

export const nullModule: BdevModule = { name: 'null' };
bdevModuleRegister(nullModule);

function submit(_ch: IoChannel<unknown>, io: BdevIo): void {
  bdevIoComplete(io, io.type === IoType.ABORT ? IoStatus.FAILED : IoStatus.SUCCESS);
}

const SUPPORTED = new Set<IoType>([
  IoType.READ,
  IoType.WRITE,
  IoType.WRITE_ZEROES,
  IoType.UNMAP,
  IoType.FLUSH,
  IoType.RESET,
]);

/** bdev_null_create on this reactor; `replay` (same uuid) for the others. */
export function bdevNullCreate(params: NullCreateParams): Created<NullCreateParams> {
  const r = new ParamReader('bdev_null_create', params);
  r.only([
    'name',
    'num_blocks',
    'block_size',
    'physical_block_size',
    'uuid',
    'md_size',
    'dif_type',
    'dif_is_head_of_md',
  ]);
  const name = r.str('name');
  const blockSize = r.blockSize();
  const numBlocks = r.int('num_blocks', { min: 1 });
  const uuid = r.uuid('uuid');
  r.int('physical_block_size', { min: 0, def: 0 });
  if (r.int('md_size', { min: 0, def: 0 }) !== 0 || r.int('dif_type', { min: 0, max: 3, def: 0 }) !== 0) {
    throw new BdevError(
      'ENOTSUP',
      'bdev_null_create: metadata and DIF are not supported yet (md_size and dif_type must be 0)',
    );
  }
  if (bdevGetByName(name) !== undefined)
    throw new BdevError('EEXIST', `bdev_null_create: bdev ${name} exists`);
  const bdev = bdevRegister({
    name,
    uuid,
    productName: 'Null disk',
    blockSize,
    numBlocks,
    module: nullModule,
    fn: {
      submitRequest: submit,
      ioTypeSupported: (t) => SUPPORTED.has(t),
      getIoChannel: () => moduleChannel('bdev_null'),
      destruct: (done) => done(),
    },
  });
  return { name, replay: { ...params, uuid: bdev.uuid } };
}

/** bdev_null_delete. */
export function bdevNullDelete(params: { name: string }, done?: (err: BdevError | null) => void): void {
  const r = new ParamReader('bdev_null_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const b = bdevGetByName(name);
  if (b === undefined || b.module !== nullModule)
    throw new BdevError('ENODEV', `bdev_null_delete: no null bdev ${name}`);
  bdevUnregister(b, done);
}

/** bdev_null_resize: `new_size` in MiB (SPDK's unit); open descriptors hear RESIZE. */
export function bdevNullResize(params: { name: string; new_size: number }): void {
  const r = new ParamReader('bdev_null_resize', params);
  r.only(['name', 'new_size']);
  const name = r.str('name');
  const mib = r.int('new_size', { min: 1 });
  const b = bdevGetByName(name);
  if (b === undefined || b.module !== nullModule)
    throw new BdevError('ENODEV', `bdev_null_resize: no null bdev ${name}`);
  const blocks = (mib * 1024 * 1024) / b.blockSize;
  if (!Number.isInteger(blocks))
    r.fail(`new_size ${mib} MiB is not a whole number of ${b.blockSize}-byte blocks`);
  bdevNotifyBlockcntChange(b, blocks);
}
