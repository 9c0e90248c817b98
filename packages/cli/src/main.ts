#!/usr/bin/env node
import { runCli } from './run.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Errors that carry a code are expected failures (a refused connect, a bad argument): their
    // message says it all. Anything else is a bug worth its stack.
    const expected = e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
    const text =
      e instanceof Error ? (expected ? `${e.name}: ${e.message}` : (e.stack ?? e.message)) : String(e);
    process.stderr.write(`storkit: ${text}\n`);
    process.exitCode = 1;
  },
);
