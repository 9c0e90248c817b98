// `npm run soak [-- --minutes N] [--round-seconds S]`: the soak of faults/soak-run.ts for N
// minutes (default 60) in rounds of S seconds (default 20). Prints one line per round and a
// summary; exits 1 on any verify error, failed or unanswered I/O, or leak.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { passed, soakRounds, summary } from './soak-run.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    'round-seconds': { type: 'string', default: '20' },
  },
});
const minutes = Number(values.minutes);
const roundMs = Number(values['round-seconds']) * 1000;
if (!(minutes > 0) || !(roundMs > 0)) {
  console.error('usage: soak [--minutes N (default 60)] [--round-seconds S (default 20)]');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'storkit-soak-'));
let code = 1;
try {
  console.log(`soak: ${minutes} min, started ${new Date().toISOString()}`);
  const t = await soakRounds(dir, { minutes, roundMs, log: (l) => console.log(l) });
  console.log(summary(t));
  console.log(`soak: ended ${new Date().toISOString()}`);
  code = passed(t) ? 0 : 1;
} catch (e) {
  console.error(e);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// The vhost initiator's reactor harness keeps the loop alive: leave explicitly.
process.exit(code);
