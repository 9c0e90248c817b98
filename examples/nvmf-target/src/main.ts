#!/usr/bin/env node
// nvmf-target [-m MASK] [-a ADDRESS] [-p PORT] [--mib N] [-n NQN] [-r RPC_SOCKET]: start the target,
// print the connect lines, serve until Ctrl-C (or SIGTERM, or `rpc.py spdk_kill_instance SIGTERM`).
import { parseArgs } from 'node:util';

import { startNvmfTarget } from './nvmf-target.js';

const USAGE = 'usage: nvmf-target [-m MASK] [-a ADDRESS] [-p PORT] [--mib N] [-n NQN] [-r RPC_SOCKET]';

function parse() {
  try {
    return parseArgs({
      options: {
        mask: { type: 'string', short: 'm', default: '0x3' },
        address: { type: 'string', short: 'a', default: '127.0.0.1' },
        port: { type: 'string', short: 'p', default: '4420' },
        mib: { type: 'string', default: '256' },
        nqn: { type: 'string', short: 'n', default: 'nqn.2016-06.io.storkit:cnode1' },
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
  const t = await startNvmfTarget({
    mask: values.mask,
    address: values.address,
    port,
    mib,
    nqn: values.nqn,
    rpcSocket: values.rpc,
  });
  const cores = t.target.app?.cores ?? [];
  console.log(`nvmf-target: ${values.nqn}, namespace 1 = Malloc0 (${mib} MiB, 512-byte blocks)`);
  console.log(`  listening on ${values.address}:${port} (NVMe/TCP) from every reactor`);
  for (const [i, c] of cores.entries()) console.log(`  core ${c}: poll group ${t.pollGroups[i] ?? '?'}`);
  console.log('  connect with:');
  for (const c of t.connect) console.log(`    ${c}`);
  console.log(`  JSON-RPC: ${t.rpcSocket} (SPDK's rpc.py -s, or storkit rpc -s: nvmf_get_stats, ...)`);
  console.log('  stop:     Ctrl-C');
  const r = await t.target.done;
  console.log(`nvmf-target: stopped (exit ${r.code})`);
  process.exitCode = r.code;
} catch (e) {
  console.error(`nvmf-target: ${(e as Error).message}`);
  process.exitCode = 1;
}
