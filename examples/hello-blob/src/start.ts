#!/usr/bin/env node
// hello-blob: SPDK's hello_blob on one reactor; prints each step and exits 0 when the blob read
// back what was written.
import { startApp } from '@storkit/reactor';

export async function hello(log: (s: string) => void): Promise<number> {
  const app = await startApp({
    mask: '0x1',
    main: new URL('./main.js', import.meta.url),
    onReport: (v) => log(JSON.stringify(v)),
  });
  const r = await app.done;
  if (r.error) log(`error: ${r.error}`);
  return r.code;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await hello(console.log);
