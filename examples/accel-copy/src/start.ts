#!/usr/bin/env node
// accel-copy: one reactor, the accel framework, a few operations on 1 MiB of DMA memory. With
// --ioat it starts the I/OAT device model (no machine here has the engine) and hands its channel
// to the reactor: copies and fills then run on the engine, the rest on the CPU.
import { IoatModel } from '@storkit/ioat/testing';
import { startApp } from '@storkit/reactor';

export async function accelCopy(ioat: boolean, log: (s: string) => void): Promise<number> {
  const model = ioat ? await IoatModel.start({ channels: 1 }) : null;
  try {
    const dev = model?.devices[0];
    dev?.enableBusMaster();
    const app = await startApp({
      mask: '0x1',
      main: new URL('./main.js', import.meta.url),
      mainArg: { ioat: dev?.share() ?? null },
      onReport: (v) => log(JSON.stringify(v)),
    });
    const r = await app.done;
    if (r.error) log(`error: ${r.error}`);
    return r.code;
  } finally {
    await model?.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await accelCopy(process.argv.includes('--ioat'), console.log);
}
