// bdev_raid's RPC-shaped entry points (SPDK's bdev_raid_rpc.c): create, delete, get, and the
// removal and addition (with rebuild) of a base bdev. Each runs on one worker; the app broadcasts
// create, delete and remove to every reactor.
import { BdevError } from '../../errors.js';
import { bdevClose, bdevGetByName, bdevUnregister, requireThread } from '../../registry.js';
import { ParamReader } from '../params.js';
import { openBase } from '../vbdev.js';
import {
  attach,
  baseRemoved,
  bringOnline,
  newSlot,
  type Raid,
  type RaidLevel,
  raidInfo,
  raidModule,
  raids,
  SlotState,
} from './raid.js';
import { processStart, processWalk, startRebuild } from './rebuild.js';

/** bdev_raid_create params (SPDK schema). */
export interface RaidCreateParams {
  name: string;
  raid_level: string;
  base_bdevs: string[] | string;
  strip_size_kb?: number;
  uuid?: string;
  superblock?: boolean;
}

function levelOf(r: ParamReader, v: string): RaidLevel {
  const l = v.toLowerCase();
  if (l === 'raid0' || l === '0') return 'raid0';
  if (l === 'raid1' || l === '1') return 'raid1';
  if (l === 'concat') return 'concat';
  return r.fail(`raid_level must be raid0, raid1 or concat, got ${v}`);
}

/**
 * bdev_raid_create: registered at once when every base exists, else "configuring" until the
 * missing bases appear. Returns replay params (with the uuid once online).
 */
export function bdevRaidCreate(params: RaidCreateParams): { name: string; replay: RaidCreateParams } {
  requireThread('bdev_raid_create');
  const r = new ParamReader('bdev_raid_create', params);
  r.only(['name', 'raid_level', 'base_bdevs', 'strip_size_kb', 'uuid', 'superblock']);
  const name = r.str('name');
  const level = levelOf(r, r.str('raid_level'));
  const bases = r.strList('base_bdevs');
  const stripKb = r.int('strip_size_kb', { min: 0, def: 0 });
  const uuid = r.uuid('uuid');
  if (r.bool('superblock', false))
    throw new BdevError('ENOTSUP', 'bdev_raid_create: superblock is not supported yet');
  if (level !== 'raid1' && (stripKb === 0 || (stripKb & (stripKb - 1)) !== 0)) {
    r.fail(`strip_size_kb must be a power of two for ${level}, got ${stripKb}`);
  }
  if (level === 'raid1' && stripKb !== 0) r.fail('strip_size_kb is not used by raid1 (leave it out or 0)');
  if (bases.length < (level === 'raid1' ? 2 : 1))
    r.fail(`${level} needs ${level === 'raid1' ? 2 : 1} base bdevs or more`);
  if (new Set(bases).size !== bases.length) r.fail('base_bdevs has duplicates');
  if (raids.has(name) || bdevGetByName(name) !== undefined)
    throw new BdevError('EEXIST', `bdev_raid_create: ${name} exists`);
  const raid: Raid = {
    name,
    level,
    stripBlocks: 0,
    stripKb,
    uuid,
    slots: bases.map(newSlot),
    bdev: null,
    key: {},
    blockSize: 0,
    state: 'configuring',
    rebuild: null,
    processOffset: 0,
  };
  raids.set(name, raid);
  try {
    for (const s of raid.slots) if (bdevGetByName(s.name) !== undefined) attach(raid, s);
    if (raid.slots.every((s) => s.desc !== null)) bringOnline(raid);
  } catch (e) {
    for (const s of raid.slots) if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
    raids.delete(name);
    throw e;
  }
  return { name, replay: { ...params, uuid: raid.uuid } };
}

/** bdev_raid_delete. */
export function bdevRaidDelete(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_raid_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const raid = raids.get(name);
  if (raid === undefined) throw new BdevError('ENODEV', `bdev_raid_delete: no raid ${name}`);
  if (raid.bdev === null || raid.state !== 'online') {
    for (const s of raid.slots) if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
    raids.delete(name);
    requireThread('bdev_raid_delete').sendMsg(() => done?.());
    return;
  }
  bdevUnregister(raid.bdev, () => done?.());
}

/** bdev_raid_get_bdevs: category all | online | configuring | offline. */
export function bdevRaidGetBdevs(params: { category?: string } = {}): Record<string, unknown>[] {
  const r = new ParamReader('bdev_raid_get_bdevs', params);
  r.only(['category']);
  const cat = r.str('category', undefined) ?? 'all';
  if (!['all', 'online', 'configuring', 'offline'].includes(cat)) r.fail(`unknown category ${cat}`);
  return [...raids.values()].filter((x) => cat === 'all' || x.state === cat).map(raidInfo);
}

/**
 * bdev_raid_remove_base_bdev on this worker. `done` (optional) runs once the base has left its
 * slot here (every channel let go of it and its descriptor is closed), as SPDK's RPC answers after
 * the removal completes; a bdev_raid_add_base_bdev may then reuse the slot at once.
 */
export function bdevRaidRemoveBaseBdev(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_raid_remove_base_bdev', params);
  r.only(['name']);
  const name = r.str('name');
  for (const raid of raids.values()) {
    if (raid.slots.some((s) => s.name === name && s.desc !== null)) {
      baseRemoved(raid, name, done);
      return;
    }
  }
  throw new BdevError('ENODEV', `bdev_raid_remove_base_bdev: ${name} is not a base of any raid`);
}

/**
 * bdev_raid_add_base_bdev (raid1): put `base_bdev` into an empty slot and rebuild it from an
 * operational mirror; it serves reads once the copy is complete. `done` runs then.
 */
export function bdevRaidAddBaseBdev(
  params: { raid_bdev: string; base_bdev: string },
  done?: (err: BdevError | null) => void,
): void {
  requireThread('bdev_raid_add_base_bdev');
  const r = new ParamReader('bdev_raid_add_base_bdev', params);
  r.only(['raid_bdev', 'base_bdev']);
  const raidName = r.str('raid_bdev');
  const raid = raids.get(raidName);
  const baseName = r.str('base_bdev');
  if (raid === undefined || raid.bdev === null || raid.state !== 'online') {
    throw new BdevError('ENODEV', `bdev_raid_add_base_bdev: no online raid ${raidName}`);
  }
  if (raid.level !== 'raid1')
    throw new BdevError('ENOTSUP', 'bdev_raid_add_base_bdev: only raid1 can rebuild');
  if (raid.rebuild !== null) throw new BdevError('EBUSY', `raid ${raid.name} is already rebuilding`);
  const slot = raid.slots.findIndex((s) => s.desc === null);
  if (slot < 0) throw new BdevError('EBUSY', `raid ${raid.name} has no empty slot`);
  const base = bdevGetByName(baseName);
  if (base === undefined) throw new BdevError('ENODEV', `bdev_raid_add_base_bdev: no bdev ${baseName}`);
  if (base.blockSize !== raid.blockSize || base.numBlocks < raid.slots[0].blocks) {
    throw new BdevError(
      'EINVAL',
      `bdev_raid_add_base_bdev: ${baseName} is too small or has another block size`,
    );
  }
  const s = raid.slots[slot];
  s.name = baseName;
  s.failed = false;
  s.desc = openBase(baseName, raidModule, (b) => baseRemoved(raid, b.name));
  s.state = SlotState.REBUILDING;
  s.blocks = raid.slots.find((x) => x.state === SlotState.ONLINE)?.blocks ?? base.numBlocks;
  raid.processOffset = 0;
  // Every worker opens the new base and every channel gets a channel to it before copying starts.
  processWalk(raid, processStart, slot, 0, () => startRebuild(raid, slot, done));
}
