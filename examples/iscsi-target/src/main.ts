#!/usr/bin/env node
// iscsi-target [-m MASK] [-a ADDRESS] [-p PORT] [--mib N] [-r RPC_SOCKET]: start the target, print
// the initiator command lines, serve until Ctrl-C (or SIGTERM, or `storkit rpc spdk_kill_instance`).
import { parseArgs } from 'node:util';

import { startIscsiTarget } from './iscsi-target.js';

const USAGE = 'usage: iscsi-target [-m MASK] [-a ADDRESS] [-p PORT] [--mib N] [-r RPC_SOCKET]';

function parse() {
  try {
    return parseArgs({
      options: {
        mask: { type: 'string', short: 'm', default: '0x3' },
        address: { type: 'string', short: 'a', default: '127.0.0.1' },
        port: { type: 'string', short: 'p', default: '3260' },
        mib: { type: 'string', default: '256' },
        rpc: { type: 'string', short: 'r' },
      },
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return process.exit(2);
  }
}
const values = parse();
const port = Number(values.port);
const mib = Number(values.mib);
if (!(Number.isInteger(port) && port > 0 && port < 65536 && Number.isInteger(mib) && mib > 0)) {
  console.error(USAGE);
  process.exit(2);
}

try {
  const t = await startIscsiTarget({
    mask: values.mask,
    host: values.address,
    port,
    mib,
    rpcSocket: values.rpc,
  });
  const cores = t.target.app?.cores ?? [];
  console.log(`iscsi-target: ${t.iqn}, LUN 0 = Malloc0 (${mib} MiB, 512-byte blocks)`);
  console.log(`  reactors on cores ${cores.join(',')}: each accepts connections on its own socket`);
  console.log('  connect with:');
  for (const c of t.connect) console.log(`    ${c}`);
  console.log(`  JSON-RPC: ${t.rpcSocket} (SPDK's rpc.py -s, or storkit rpc -s: iscsi_get_connections, ...)`);
  console.log('  stop:     Ctrl-C');
  const r = await t.target.done;
  console.log(`iscsi-target: stopped (exit ${r.code})`);
  process.exitCode = r.code;
} catch (e) {
  console.error(`iscsi-target: ${(e as Error).message}`);
  process.exitCode = 1;
}
