#!/usr/bin/env node
// vhost-blk [-m MASK] [--mib N] [-q QUEUES] [-S SOCKET_DIR]: start one vhost-user-blk controller per
// core, print the QEMU arguments for each, serve until Ctrl-C (or SIGTERM).
import { parseArgs } from 'node:util';

import { QEMU_MEMORY, startVhostBlk } from './vhost-blk.js';

const USAGE = 'usage: vhost-blk [-m MASK] [--mib N] [-q QUEUES] [-S SOCKET_DIR]';

function parse() {
  try {
    return parseArgs({
      options: {
        mask: { type: 'string', short: 'm', default: '0x3' },
        mib: { type: 'string', default: '256' },
        queues: { type: 'string', short: 'q', default: '2' },
        'socket-dir': { type: 'string', short: 'S' },
      },
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return process.exit(2);
  }
}
const values = parse();
const mib = Number(values.mib);
const queues = Number(values.queues);
if (!(Number.isInteger(mib) && mib > 0 && Number.isInteger(queues) && queues > 0 && queues <= 16)) {
  console.error(USAGE);
  process.exit(2);
}

try {
  const t = await startVhostBlk({ mask: values.mask, mib, queues, socketDir: values['socket-dir'] });
  console.log(`vhost-blk: ${t.controllers.length} vhost-user-blk controllers, ${mib} MiB RAM disk each`);
  for (const c of t.controllers) {
    console.log(`  ${c.name} on core ${c.core}: ${c.bdev} at ${c.socket}`);
    console.log(`    qemu-system-x86_64 ${QEMU_MEMORY} ${c.qemu} ...`);
  }
  console.log(
    `  JSON-RPC: ${t.socketDir}/rpc.sock (SPDK's rpc.py -s, or storkit rpc -s: vhost_get_controllers, ...)`,
  );
  console.log('  stop:     Ctrl-C');
  const r = await t.target.done;
  console.log(`vhost-blk: stopped (exit ${r.code})`);
  process.exitCode = r.code;
} catch (e) {
  console.error(`vhost-blk: ${(e as Error).message}`);
  process.exitCode = 1;
}
