import type { Control } from '@storkit/reactor';
import { expect } from 'chai';

import { bdevSubsystem, type ReactorControl } from '../src/index.js';

/** A ReactorControl that records calls and fails where told, standing in for the reactors. */
function fakeControl(count: number, failOn: (i: number, op: string) => boolean) {
  const calls: [number, string, unknown][] = [];
  const ctl: ReactorControl = {
    count,
    tickRate: 1e9,
    ticks: () => 0,
    async call<P, R>(i: number, op: Control<P, R>, params: P): Promise<R> {
      calls.push([i, op.name, params]);
      if (failOn(i, op.name)) throw Object.assign(new Error(`reactor ${i} refused`), { code: 'ENOMEM' });
      if (op.name.endsWith('_create')) {
        const p = params as Record<string, unknown>;
        return { names: [p.name], replay: { ...p, uuid: 'u', storkit_region: 7 } } as R;
      }
      return true as R;
    },
  };
  return { ctl, calls };
}

describe('app: bdev subsystem replay', () => {
  const handler = (s: ReturnType<typeof bdevSubsystem>, name: string) =>
    s.methods.find((m) => m.name === name)!.handler as (p: unknown, c: unknown) => Promise<unknown>;

  it('creates on reactor 0, replays the returned params on the others, and journals for save_config', async () => {
    const { ctl, calls } = fakeControl(3, () => false);
    const s = bdevSubsystem(ctl);
    expect(
      await handler(s, 'bdev_malloc_create')({ name: 'M', num_blocks: 8, block_size: 512 }, {}),
    ).to.equal('M');
    expect(calls.map(([i, op]) => `${i}:${op}`)).to.deep.equal([
      '0:bdev.malloc_create',
      '1:bdev.malloc_create',
      '2:bdev.malloc_create',
    ]);
    expect((calls[1][2] as { storkit_region: number }).storkit_region).to.equal(7);
    expect(await s.writeConfig()).to.deep.equal([
      { method: 'bdev_malloc_create', params: { name: 'M', num_blocks: 8, block_size: 512, uuid: 'u' } },
    ]);
  });

  it('rolls back every reactor that created it when a later reactor fails', async () => {
    const { ctl, calls } = fakeControl(3, (i, op) => i === 2 && op === 'bdev.malloc_create');
    const s = bdevSubsystem(ctl);
    const e = await handler(s, 'bdev_malloc_create')({ name: 'M', num_blocks: 8, block_size: 512 }, {}).catch(
      (x) => x,
    );
    expect(e).to.have.property('code', 'ENOMEM');
    const deletes = calls.filter(([, op]) => op.endsWith('_delete')).map(([i, op, p]) => [i, op, p]);
    expect(deletes).to.deep.equal([
      [1, 'bdev.malloc_delete', { name: 'M' }],
      [0, 'bdev.malloc_delete', { name: 'M' }],
    ]);
    expect(await s.writeConfig()).to.deep.equal([]);
  });
});
