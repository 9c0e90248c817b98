// Regenerates the vhost-user fuzz corpus from a real frontend: QEMU boots a Linux guest whose disk
// is a vhost-user-blk (or -scsi) device, through a recording proxy in front of a storkit
// controller. The proxy forwards every message both ways with its file descriptors and records
// what QEMU sent (test/corpus/vhost-user-<kind>.json: each message's decoded fields and how many
// fds it carried). Not a test; run by hand when QEMU's behaviour is worth re-recording:
//   npx tsc -b && node packages/vhost/dist/test/corpus-capture.js
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { RamBackend } from '@storkit/block/testing';

import { BlkDevice, VhostController, VhostScsiDevice } from '../src/index.js';
import { closeFd, connect, listen, type NativeConnection, type VhostMessage } from '../src/native.js';
import { bootGuest } from './guest.js';
import { harness } from './helpers.js';

const DIR = `/tmp/storkit-vhost-capture-${process.pid}`;

/** JSON-able form of a message: bigints as decimal strings, buffers as hex, fds as a count. */
function record(m: VhostMessage): object {
  const o: Record<string, unknown> = { request: m.request, flags: m.flags, nfds: m.fds.length };
  if (m.value !== undefined && m.value !== null) o.value = m.value.toString();
  for (const k of ['index', 'num', 'nofd', 'addr', 'regions', 'inflight'] as const)
    if (m[k] !== undefined && m[k] !== null) o[k] = m[k];
  if (m.config) o.config = { ...m.config, data: Buffer.from(m.config.data).toString('hex') };
  return o;
}

async function capture(kind: 'blk' | 'scsi', packed: boolean): Promise<object[]> {
  const h = harness();
  const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: (128 << 20) / 512 });
  const backendPath = `${DIR}/${kind}.sock`;
  let device: BlkDevice | VhostScsiDevice;
  if (kind === 'blk') device = new BlkDevice(ram, { numQueues: 2 });
  else {
    device = new VhostScsiDevice({ name: 'scsi' });
    device.addTarget(0, ram);
  }
  const ctrl = new VhostController({ name: kind, socketPath: backendPath, device, packedRing: packed });
  ctrl.start();
  const proxyPath = `${DIR}/${kind}-proxy.sock`;
  const listener = listen(proxyPath);
  const got: object[] = [];
  let front: NativeConnection | null = null;
  let back: NativeConnection | null = null;
  let running = true;
  const forward = (from: NativeConnection, to: NativeConnection, rec: boolean): boolean => {
    const m = from.recv();
    if (!m) return false;
    if (rec) got.push(record(m));
    if (process.env.CAPTURE_DEBUG)
      console.error(rec ? '->' : '<-', JSON.stringify(record(m)), 'to closed:', to.closed);
    to.send(m);
    for (const fd of m.fds) closeFd(fd);
    return true;
  };
  const pump = async () => {
    while (running) {
      // The harness runs a fake clock: move it so the controller's timed pollers run.
      h.advanceTime(100);
      h.pollOnce();
      if (!front) {
        front = listener.accept();
        if (front) back = connect(backendPath);
      }
      try {
        while (front && back && (forward(front, back, true) || forward(back, front, false))) h.pollOnce();
      } catch (e) {
        // QEMU went away: the run is over.
        if (process.env.CAPTURE_DEBUG) console.error('proxy:', (e as Error).message);
        running = false;
      }
      await new Promise((r) => setImmediate(r));
    }
  };
  const p = pump();
  const run = bootGuest({ socket: proxyPath, type: kind, workload: 'rw.sh', packed, timeoutMs: 300_000 });
  const r = await run.done;
  running = false;
  await p;
  console.log(
    `${kind}${packed ? ' packed' : ''}: QEMU exit ${r.code}, ${got.length} messages, ${r.results.join(' | ')}`,
  );
  ctrl.close();
  listener.close();
  return got;
}

rmSync(DIR, { recursive: true, force: true });
mkdirSync(DIR, { recursive: true });
const out = (name: string) => fileURLToPath(new URL(`../../test/corpus/${name}`, import.meta.url));
mkdirSync(fileURLToPath(new URL('../../test/corpus/', import.meta.url)), { recursive: true });
for (const [kind, packed] of [
  ['blk', false],
  ['blk', true],
  ['scsi', false],
] as const) {
  const msgs = await capture(kind, packed);
  writeFileSync(
    out(`vhost-user-${kind}${packed ? '-packed' : ''}.json`),
    `${JSON.stringify({ source: 'QEMU 7.2 (Debian qemu-system-x86) booting Linux, recorded by test/corpus-capture.ts', messages: msgs }, null, 1)}\n`,
  );
}
rmSync(DIR, { recursive: true, force: true });
process.exit(0);
