import { expect } from 'chai';

import { hello } from '../src/start.js';

describe('hello-blob', function () {
  this.timeout(60_000);

  it('makes a blobstore, writes a blob, reads it back, deletes it, unloads', async () => {
    const lines: string[] = [];
    const code = await hello((l) => lines.push(l));
    const steps = lines.map((l) => JSON.parse(l) as { step: string; [k: string]: unknown });
    expect(steps.map((s) => s.step)).to.deep.equal([
      'init',
      'create',
      'resize',
      'write',
      'read',
      'delete',
      'unload',
    ]);
    expect(code).to.equal(0);
    const init = steps[0] as unknown as { freeClusters: number; clusterSize: number };
    expect(init.clusterSize).to.equal(1024 * 1024);
    expect(steps.find((s) => s.step === 'read')?.match).to.equal(true);
    expect(steps.find((s) => s.step === 'resize')?.clusters).to.equal(init.freeClusters);
    expect(steps.find((s) => s.step === 'delete')?.freeClusters).to.equal(init.freeClusters);
  });
});
