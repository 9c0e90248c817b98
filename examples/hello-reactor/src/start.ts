#!/usr/bin/env node
// hello-reactor [-m MASK] [--tokens N] [--laps N]: start reactors on the cores of MASK (SPDK
// style, default 0x3 or every core there is), circulate tokens, print what happened, exit.
import { parseArgs } from 'node:util';

import { cpuCount } from '@storkit/native';
import { startApp } from '@storkit/reactor';

import type { HelloArgs } from './main.js';

export async function hello(mask: string, args: HelloArgs, log: (s: string) => void): Promise<number> {
  const app = await startApp({
    mask,
    main: new URL('./main.js', import.meta.url),
    mainArg: args,
    onReport: (v) => log(JSON.stringify(v)),
  });
  const r = await app.done;
  if (r.error) log(`error: ${r.error}`);
  for (const l of r.leaked) log(`leaked: ${l}`);
  return r.code;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      mask: { type: 'string', short: 'm', default: cpuCount() >= 2 ? '0x3' : '0x1' },
      tokens: { type: 'string', default: '64' },
      laps: { type: 'string', default: '10000' },
    },
  });
  const args = { tokens: Number(values.tokens), laps: Number(values.laps) };
  if (!(args.tokens >= 1 && args.laps >= 1)) {
    console.error('usage: hello-reactor [-m MASK] [--tokens N>=1] [--laps N>=1]');
    process.exit(2);
  }
  process.exitCode = await hello(values.mask!, args, console.log);
}
