import { Worker } from 'node:worker_threads';

import { cpuCount, crc32c, crc32cHardware, tickRate, tickSource, ticks, ticksToUs } from '@storkit/native';

import { type Command, UsageError } from '../command.js';

const USAGE = `usage: storkit demo [--mib N]

Shows what this storkit build can do on this machine: pins one worker per CPU,
reports the tick source, and checksums N MiB (default 256) with hardware CRC32C.`;

// Each worker pins itself and reports where it runs; proves pinning from inside a worker.
const PIN = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.mod).then((n) => {
  n.pinThread(workerData.cpu);
  parentPort.postMessage({ cpu: n.currentCpu(), tid: n.threadId() });
});`;

async function pinnedWorkers(): Promise<string[]> {
  const mod = import.meta.resolve('@storkit/native');
  const lines: string[] = [];
  for (let cpu = 0; cpu < cpuCount(); cpu++) {
    const w = new Worker(PIN, { eval: true, workerData: { mod, cpu } });
    const r = await new Promise<{ cpu: number; tid: number }>((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    });
    await w.terminate();
    lines.push(`  worker pinned to CPU ${cpu}: runs on CPU ${r.cpu} (tid ${r.tid})`);
  }
  return lines;
}

export const demo: Command = {
  name: 'demo',
  summary: 'show the native core at work on this machine (no hardware needed)',
  usage: USAGE,
  async run(argv) {
    let mib = 256;
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--mib') mib = Number(argv[++i]);
      else throw new UsageError(`unknown option '${argv[i]}'`);
    }
    if (!Number.isInteger(mib) || mib < 1 || mib > 4096) throw new UsageError('--mib takes 1..4096');
    const out: string[] = ['storkit demo', `  CPUs: ${cpuCount()}`, ...(await pinnedWorkers())];
    out.push(`  ticks: ${tickSource}, ${(tickRate / 1e6).toFixed(1)} MHz`);
    const buf = new Uint8Array(mib << 20);
    for (let i = 0; i < buf.length; i += 4096) buf[i] = i >>> 12;
    const t0 = ticks();
    const crc = crc32c(buf);
    const us = ticksToUs(ticks() - t0);
    out.push(
      `  CRC32C (${crc32cHardware ? 'hardware' : 'software'}) of ${mib} MiB: 0x${crc.toString(16).padStart(8, '0')}` +
        ` in ${(us / 1000).toFixed(1)} ms = ${((mib / 1024) * (1e6 / us)).toFixed(2)} GiB/s`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
