import { NvmeController, parseTransportId } from '@storkit/nvme';
import { bytesToUuid, DISCOVERY_NQN, decodeHealthLog, LogPage } from '@storkit/nvme-spec';

import { type Command, UsageError } from '../command.js';

const USAGE = `usage: storkit nvme-identify -r TRID [--hdgst] [--ddgst]

Connects to an NVMe-oF controller and prints its Identify data, like SPDK's identify tool.
TRID is an SPDK transport ID: 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN'
(without subnqn: the discovery controller, and its discovery log is printed).`;

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export const nvmeIdentify: Command = {
  name: 'nvme-identify',
  summary: 'identify an NVMe/TCP controller and its namespaces (SPDK identify)',
  usage: USAGE,
  async run(argv) {
    let trid = '';
    let hdgst = false;
    let ddgst = false;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-r') trid = argv[++i] ?? '';
      else if (a === '--hdgst') hdgst = true;
      else if (a === '--ddgst') ddgst = true;
      else throw new UsageError(`unknown option '${a}'`);
    }
    if (!trid) throw new UsageError('-r TRID is required');
    const t = parseTransportId(trid);
    const c = await NvmeController.connect(t, { hdgst, ddgst });
    const out: string[] = [];
    try {
      const d = c.cdata;
      out.push(
        '=====================================================',
        t.trtype === 'PCIe'
          ? `NVMe controller at ${t.traddr}`
          : `NVMe over Fabrics controller at ${t.traddr}:${t.trsvcid}: ${t.subnqn}`,
        '=====================================================',
        'Controller Capabilities/Features',
        '================================',
        `Vendor ID:                             ${d.vid.toString(16).padStart(4, '0')}`,
        `Subsystem Vendor ID:                   ${d.ssvid.toString(16).padStart(4, '0')}`,
        `Serial Number:                         ${d.serialNumber}`,
        `Model Number:                          ${d.modelNumber}`,
        `Firmware Version:                      ${d.firmwareRevision}`,
        `Controller ID:                         ${d.cntlid}`,
        `NVMe Specification Version (VS):       ${c.version}`,
        `Controller Type:                       ${['', 'I/O', 'Discovery', 'Administrative'][d.cntrltype] ?? d.cntrltype}`,
        `Maximum Data Transfer Size:            ${c.maxTransferSize}`,
        `Max Number of Namespaces:              ${d.nn}`,
        `Maximum Queue Entries:                 ${c.maxQueueEntries}`,
        `Abort Command Limit:                   ${d.abortLimit}`,
        `Async Event Request Limit:             ${d.aerLimit}`,
        `Keep Alive Granularity:                ${d.kas * 100} ms`,
        `Compare Command:                       ${d.oncs & 1 ? 'Supported' : 'Not Supported'}`,
        `Dataset Management Command:            ${d.oncs & 4 ? 'Supported' : 'Not Supported'}`,
        `Write Zeroes Command:                  ${d.oncs & 8 ? 'Supported' : 'Not Supported'}`,
        `Fused Compare & Write:                 ${d.fuses & 1 ? 'Supported' : 'Not Supported'}`,
        `Volatile Write Cache:                  ${d.vwc & 1 ? 'Present' : 'Not Present'}`,
        `NVMe-oF I/O Queue Command Capsule:     ${d.ioccsz * 16} bytes (in-capsule data ${d.ioccsz * 16 - 64})`,
        `Subsystem NQN:                         ${d.subnqn}`,
      );
      if (t.subnqn === DISCOVERY_NQN) {
        const entries = await c.discoveryLog();
        out.push('', 'Discovery Log Page', '==================', `Number of Records: ${entries.length}`);
        entries.forEach((e, i) => {
          out.push(
            `Entry ${i}: subtype ${['', 'referral', 'nvme subsystem', 'current discovery subsystem'][e.subtype] ?? e.subtype}` +
              ` trtype ${e.trtype === 3 ? 'TCP' : e.trtype} traddr ${e.traddr} trsvcid ${e.trsvcid} subnqn ${e.subnqn}`,
          );
        });
      } else {
        const h = decodeHealthLog(await c.getLogPage(LogPage.Health, 512));
        out.push(
          '',
          'Health Information',
          '==================',
          `Host Read Commands:                    ${h.hostReadCommands}`,
          `Host Write Commands:                   ${h.hostWriteCommands}`,
          `Error Log Entries:                     ${h.errorLogEntries}`,
        );
        for (const nsid of await c.activeNamespaces()) {
          const ns = await c.identifyNamespace(nsid);
          const desc = await c.namespaceDescriptors(nsid);
          out.push(
            '',
            `Namespace ID:${nsid}`,
            `Size (in LBAs):                        ${ns.nsze} (${((ns.nsze * ns.blockSize) / 2 ** 20).toFixed(0)} MiB)`,
            `LBA Format:                            ${ns.blockSize} bytes`,
            `Thin Provisioning:                     ${ns.nsfeat & 1 ? 'Supported' : 'Not Supported'}`,
            `Multi-path I/O (shareable):            ${ns.nmic & 1 ? 'Yes' : 'No'}`,
            `NGUID:                                 ${hex(ns.nguid)}`,
            ...(desc.uuid ? [`UUID:                                  ${bytesToUuid(desc.uuid)}`] : []),
          );
        }
      }
    } finally {
      await c.close();
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
