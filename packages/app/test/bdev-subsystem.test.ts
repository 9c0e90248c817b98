import type { Control } from '@storkit/reactor';
import { obj, opt, req, str } from '@storkit/rpc';
import { expect } from 'chai';

import { bdevSubsystem, type ReactorControl } from '../src/index.js';
import { asTargetPlugin, declareBdevMethods } from '../src/plugin.js';

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
      // Last, as SPDK's save_config writes it: lvstores on these bdevs are found before what follows.
      { method: 'bdev_wait_for_examine' },
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
    expect(await s.writeConfig()).to.deep.equal([{ method: 'bdev_wait_for_examine' }]);
  });
});

describe('app: bdev modules from plugins', () => {
  const handler = (s: ReturnType<typeof bdevSubsystem>, name: string) =>
    s.methods.find((m) => m.name === name)!.handler as (p: unknown, c: unknown) => Promise<unknown>;
  const flaky = declareBdevMethods({
    create: 'bdev_flaky_create',
    delete: 'bdev_flaky_delete',
    description: 'test module',
    params: obj({ name: req(str()), base: opt(str()) }),
    positional: ['name'],
  });

  it('serves their create and delete like the built-in ones: replay, rollback, journal, delete', async () => {
    const { ctl, calls } = fakeControl(3, (i, op) => i === 2 && op === 'plugin.bdev_flaky_create');
    const s = bdevSubsystem(ctl, [flaky]);
    expect(s.methods.find((m) => m.name === 'bdev_flaky_create')).to.include({ description: 'test module' });
    // Reactor 2 refuses: reactors 1 and 0 delete what they made, nothing is journaled.
    const e = await handler(s, 'bdev_flaky_create')({ name: 'F1' }, {}).catch((x) => x);
    expect(e).to.have.property('code', 'ENOMEM');
    expect(calls.map(([i, op]) => `${i}:${op}`)).to.deep.equal([
      '0:plugin.bdev_flaky_create',
      '1:plugin.bdev_flaky_create',
      '2:plugin.bdev_flaky_create',
      '1:plugin.bdev_flaky_delete',
      '0:plugin.bdev_flaky_delete',
    ]);
    expect(await s.writeConfig()).to.deep.equal([{ method: 'bdev_wait_for_examine' }]);
    // Two reactors: made on both, saved with the replayed params (no storkit_ handles).
    const two = fakeControl(2, () => false);
    const s2 = bdevSubsystem(two.ctl, [flaky]);
    expect(await handler(s2, 'bdev_flaky_create')({ name: 'F0', base: 'M' }, {})).to.equal('F0');
    expect(await s2.writeConfig()).to.deep.equal([
      { method: 'bdev_flaky_create', params: { name: 'F0', base: 'M', uuid: 'u' } },
      { method: 'bdev_wait_for_examine' },
    ]);
    await handler(s2, 'bdev_flaky_delete')({ name: 'F0' }, {});
    expect(two.calls.slice(2).map(([i, op, p]) => [i, op, p])).to.deep.equal([
      [1, 'plugin.bdev_flaky_delete', { name: 'F0' }],
      [0, 'plugin.bdev_flaky_delete', { name: 'F0' }],
    ]);
    expect(await s2.writeConfig()).to.deep.equal([{ method: 'bdev_wait_for_examine' }]);
  });

  it('refuses a plugin of the wrong shape, and method names that are not bdev_<name>', () => {
    expect(() => asTargetPlugin(undefined, 'x.js')).to.throw(
      /plugin x.js: its default export is not a plugin/,
    );
    expect(() => asTargetPlugin({ name: 'p', reactorModules: ['./r.js'] }, 'x.js')).to.throw(/must be URLs/);
    expect(() => asTargetPlugin({ name: 'p', bdevMethods: [{}] }, 'x.js')).to.throw(/declareBdevMethods/);
    expect(asTargetPlugin({ name: 'p', bdevMethods: [flaky] }, 'x.js').name).to.equal('p');
    expect(() =>
      declareBdevMethods({
        create: 'flaky_create',
        delete: 'bdev_flaky_delete',
        description: '',
        params: obj({}),
      }),
    ).to.throw(/not bdev_<name>/);
  });
});
