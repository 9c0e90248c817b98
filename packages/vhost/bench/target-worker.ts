// The storkit side of vhost.bench: a vhost-blk controller on a RAM ("malloc") backend, polled by
// one reactor thread spinning in this worker (SPDK's one target core). Stops on a message.
import { parentPort, workerData } from 'node:worker_threads';
import { RamBackend } from '@storkit/block/testing';
import { cpuCount, pinThread, threadId } from '@storkit/native';
import { createTestHarness } from '@storkit/reactor/testing';

import { BlkDevice, VhostController } from '../src/index.js';

const { path, mib } = workerData as { path: string; mib: number };
// The target's core: the last CPU (the initiator pins itself to CPU 0).
if (cpuCount() > 1) pinThread(cpuCount() - 1);
const h = createTestHarness({ reactors: 1 });
const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: (mib << 20) / 512 });
const ctrl = new VhostController({ name: 'bench', socketPath: path, device: new BlkDevice(ram) });
ctrl.start();
let stop = false;
parentPort?.on('message', () => {
  stop = true;
});
let last = performance.now();
const cpu0 = process.cpuUsage();
function loop(): void {
  // Spin a batch of polls per event-loop turn; the turn runs the backend's completions.
  for (let i = 0; i < 8; i++) {
    const now = performance.now();
    h.advanceTime(Math.max(1, Math.round((now - last) * 1000)));
    last = now;
    h.pollOnce();
  }
  if (stop) {
    const cpu = process.cpuUsage(cpu0);
    ctrl.close();
    h.close();
    parentPort?.postMessage({ requests: ctrl.queues[0]?.stats.requests ?? 0, cpuUs: cpu.user + cpu.system });
    return;
  }
  setImmediate(loop);
}
parentPort?.postMessage({ tid: threadId() });
loop();
