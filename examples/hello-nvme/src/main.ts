#!/usr/bin/env node
// hello-nvme -r TRID: SPDK's hello_world. TRID in SPDK's form:
//   'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.storkit:cnode1'
//   'trtype:PCIe traddr:0000:00:04.0'  (a controller bound to vfio-pci or uio_pci_generic)
import { parseArgs } from 'node:util';

import { helloNvme } from './hello-nvme.js';

const USAGE =
  "usage: hello-nvme -r 'trtype:TCP adrfam:IPv4 traddr:ADDR trsvcid:PORT subnqn:NQN' | -r 'trtype:PCIe traddr:BDF'";

function parse(): string {
  try {
    const { values } = parseArgs({ options: { trid: { type: 'string', short: 'r' } } });
    if (values.trid) return values.trid;
  } catch (e) {
    console.error((e as Error).message);
  }
  console.error(USAGE);
  return process.exit(2);
}

const trid = parse();
try {
  const n = await helloNvme(trid, console.log);
  if (n === 0) {
    console.error('hello-nvme: the controller has no active namespace');
    process.exitCode = 1;
  }
} catch (e) {
  console.error(`hello-nvme: ${(e as Error).message}`);
  process.exitCode = 1;
}
