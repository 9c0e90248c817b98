import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import { cpuCount, currentCpu, pinThread, threadAffinity, threadId } from '../src/index.js';

function allowedList(tid: number): string {
  const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('Cpus_allowed_list:'));
  return line!.split(/\s+/)[1];
}

// A worker that pins itself and reports its tid and what it sees, then waits to be released
// so the main thread can read /proc while the thread still exists.
const PIN_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.mod).then((n) => {
  n.pinThread(workerData.cpu);
  parentPort.postMessage({ tid: n.threadId(), cpu: n.currentCpu(), affinity: n.threadAffinity() });
  parentPort.once('message', () => process.exit(0));
});`;

describe('native: CPU pinning', () => {
  const mod = new URL('../src/index.js', import.meta.url).href;

  for (let cpu = 0; cpu < Math.min(cpuCount(), 2); cpu++) {
    it(`pins a worker to CPU ${cpu}, visible in /proc/self/task/<tid>/status`, async () => {
      const w = new Worker(PIN_WORKER, { eval: true, workerData: { mod, cpu } });
      const r = await new Promise<{ tid: number; cpu: number; affinity: number[] }>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      });
      expect(r.affinity).to.deep.equal([cpu]);
      expect(r.cpu).to.equal(cpu);
      expect(allowedList(r.tid)).to.equal(String(cpu));
      expect(r.tid).to.not.equal(threadId());
      w.postMessage('bye');
      await new Promise((res) => w.once('exit', res));
    });
  }

  it('leaves the main thread alone when a worker pins', () => {
    expect(threadAffinity().length).to.equal(cpuCount());
    expect(currentCpu()).to.be.within(0, cpuCount() - 1);
  });

  it('rejects an impossible CPU with EINVAL', () => {
    expect(() => pinThread(1 << 20))
      .to.throw(/cpu/)
      .with.property('code', 'EINVAL');
    expect(() => pinThread([]))
      .to.throw()
      .with.property('code', 'EINVAL');
  });
});
