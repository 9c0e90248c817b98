import { NvmeController, parseTransportId } from '@storkit/nvme';

import { type Command, UsageError } from '../command.js';
import { identifyReport } from '../identify-report.js';

const USAGE = `usage: storkit nvme-identify -r TRID [-r TRID ...] [--hdgst] [--ddgst]

Connects to NVMe controllers and prints their Identify data, health log and every active
namespace, in the layout of SPDK's spdk_nvme_identify. TRID is an SPDK transport ID:
'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN' (without subnqn: the discovery
controller, and its discovery log is printed), or 'trtype:PCIe traddr:0000:04:00.0' (a local
controller bound to vfio-pci or uio_pci_generic: see storkit setup).`;

export const nvmeIdentify: Command = {
  name: 'nvme-identify',
  summary: 'identify NVMe controllers (TCP, PCIe) and their namespaces (SPDK identify)',
  usage: USAGE,
  async run(argv) {
    const trids: string[] = [];
    let hdgst = false;
    let ddgst = false;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-r') trids.push(argv[++i] ?? '');
      else if (a === '--hdgst') hdgst = true;
      else if (a === '--ddgst') ddgst = true;
      else throw new UsageError(`unknown option '${a}'`);
    }
    if (trids.length === 0 || trids.some((t) => t === '')) throw new UsageError('-r TRID is required');
    const out: string[] = [];
    for (const trid of trids) {
      const t = parseTransportId(trid);
      const c = await NvmeController.connect(t, { hdgst, ddgst });
      try {
        out.push(...(await identifyReport(c, t)));
      } finally {
        await c.close();
      }
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
