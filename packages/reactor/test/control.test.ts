import { expect } from 'chai';

import { type App, type Control, ControlError, startApp } from '../src/index.js';
import { echo, fail, later, missing, thrown, twice } from './fixtures/control-ops.js';

describe('App.control: control operations on reactors', function () {
  this.timeout(60_000);
  let app: App;

  before(async () => {
    app = await startApp({
      cores: [0, 1],
      modules: [new URL('./fixtures/controls.js', import.meta.url)],
      signals: false,
    });
  });
  after(async () => {
    const r = await app.stop();
    expect(r.code).to.equal(0);
    expect(r.leaked).to.deep.equal([]);
  });

  it("runs on each reactor's first thread with the params", async () => {
    expect(await app.control(0, echo, { a: 1 })).to.deep.equal({
      params: { a: 1 },
      reactor: 0,
      thread: 'app_thread',
    });
    expect(await app.control(1, echo, [2])).to.deep.equal({
      params: [2],
      reactor: 1,
      thread: 'reactor_1',
    });
  });

  it('completes asynchronously, and only once', async () => {
    expect(await app.control(1, later, { n: 21 })).to.equal(42);
    expect(await app.control(0, twice, null)).to.equal(1);
  });

  it('carries error codes back to the main thread', async () => {
    const cases: [Control<null, never>, string, RegExp][] = [
      [fail, 'ENODEV', /nothing here/],
      [thrown, 'EIO', /thrown synchronously/],
      [missing, 'ENOENT', /no control operation test.missing/],
    ];
    for (const [op, code, re] of cases) {
      const e = await app.control(1, op, null).catch((x: unknown) => x);
      expect(e).to.be.instanceOf(ControlError);
      expect(e).to.include({ code, reactor: 1 });
      expect((e as Error).message).to.match(re);
    }
    const bad = await app.control(7, echo, null).catch((x: unknown) => x);
    expect(bad).to.have.property('code', 'EINVAL');
  });
});
