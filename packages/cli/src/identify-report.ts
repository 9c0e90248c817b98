// `storkit nvme-identify`'s report, in the layout and wording of SPDK's spdk_nvme_identify (its
// identify example), so the two can be compared line by line on the same controller. Only what
// storkit reads is printed; every line it prints means what SPDK's line of that name means.
import type { NvmeController, TransportId } from '@storkit/nvme';
import {
  bytesToUuid,
  DISCOVERY_NQN,
  decodeHealthLog,
  Feature,
  type IdentifyNamespace,
  LogPage,
  type NamespaceDescriptors,
} from '@storkit/nvme-spec';

const sup = (b: boolean): string => (b ? 'Supported' : 'Not Supported');
const yes = (b: boolean): string => (b ? 'Yes' : 'No');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');
const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** "Key:" padded to SPDK's column (the value starts at column 40 in the controller section). */
function kv(key: string, value: string | number, width = 39): string {
  return `${`${key}:`.padEnd(width)}${value}`;
}

function hex(b: Uint8Array): string {
  return Array.from(b, hex2).join('');
}

/** The report for one controller (its namespaces and health included). */
export async function identifyReport(c: NvmeController, t: TransportId): Promise<string[]> {
  const d = c.cdata;
  const x = d.details;
  const cap = c.cap;
  const out: string[] = ['====================================================='];
  if (t.trtype === 'PCIe') {
    const id = c.pciId;
    out.push(`NVMe Controller at ${t.traddr} [${hex4(id?.vendor ?? d.vid)}:${hex4(id?.device ?? 0)}]`);
  } else {
    out.push(`NVMe over Fabrics controller at ${t.traddr}:${t.trsvcid}: ${t.subnqn}`);
  }
  const mdts = d.mdts === 0 ? 'Unlimited' : String(4096 * 2 ** (d.mdts + cap.mpsmin));
  out.push(
    '=====================================================',
    'Controller Capabilities/Features',
    '================================',
    kv('Vendor ID', hex4(d.vid)),
    kv('Subsystem Vendor ID', hex4(d.ssvid)),
    kv('Serial Number', d.serialNumber),
    kv('Model Number', d.modelNumber),
    kv('Firmware Version', d.firmwareRevision),
  );
  if (x !== undefined) {
    out.push(kv('Recommended Arb Burst', x.rab), kv('IEEE OUI Identifier', x.ieeeBytes.map(hex2).join(' ')));
  }
  out.push(
    'Multi-path I/O',
    kv('  May have multiple subsystem ports', yes((d.cmic & 1) !== 0)),
    kv('  May have multiple controllers', yes((d.cmic & 2) !== 0)),
    kv('  Associated with SR-IOV VF', yes((d.cmic & 4) !== 0)),
    kv('Max Data Transfer Size', mdts),
    kv('Max Number of Namespaces', d.nn),
  );
  if (!c.isDiscovery) {
    const q = await c.getFeatures(Feature.NumberOfQueues).catch(() => -1);
    if (q >= 0) out.push(kv('Max Number of I/O Queues', Math.min((q & 0xffff) + 1, (q >>> 16) + 1)));
  }
  out.push(
    kv('NVMe Specification Version (VS)', c.version),
    kv('NVMe Specification Version (Identify)', versionOf(d.version)),
    kv('Maximum Queue Entries', cap.maxQueueEntries),
    kv('Contiguous Queues Required', yes(cap.cqr)),
    kv('Reset Timeout', `${cap.timeout * 500} ms`),
    kv('Doorbell Stride', `${4 << cap.dstrd} bytes`),
    kv('NVM Subsystem Reset', sup(cap.nssrs)),
    'Command Sets Supported',
    kv('  NVM Command Set', sup((cap.css & 1) !== 0)),
    kv('Memory Page Size Minimum', `${4096 << cap.mpsmin} bytes`),
    kv('Memory Page Size Maximum', `${4096 << cap.mpsmax} bytes`),
    'Optional Asynchronous Events Supported',
    kv('  Namespace Attribute Notices', sup((d.oaes & (1 << 8)) !== 0)),
    kv('  Firmware Activation Notices', sup((d.oaes & (1 << 9)) !== 0)),
    '',
    'Admin Command Set Attributes',
    '============================',
  );
  const oacs = d.oacs ?? 0;
  out.push(
    kv('Security Send/Receive', sup((oacs & 1) !== 0)),
    kv('Format NVM', sup((oacs & 2) !== 0)),
    kv('Firmware Activate/Download', sup((oacs & 4) !== 0)),
    kv('Namespace Management', sup((oacs & 8) !== 0)),
    kv('Device Self-Test', sup((oacs & 16) !== 0)),
    kv('Directives', sup((oacs & 32) !== 0)),
    kv('NVMe-MI', sup((oacs & 64) !== 0)),
    kv('Virtualization Management', sup((oacs & 128) !== 0)),
    kv('Doorbell Buffer Config', sup((oacs & 256) !== 0)),
    kv('Abort Command Limit', d.abortLimit),
    kv('Async Event Request Limit', d.aerLimit),
    kv('Subsystem NQN', d.subnqn),
    kv('Error Log Page Entries Supported', d.errorLogEntries),
    d.kas === 0 ? kv('Keep Alive', 'Not Supported') : kv('Keep Alive Granularity', `${d.kas * 100} ms`),
    '',
    'NVM Command Set Attributes',
    '==========================',
  );
  if (x !== undefined) {
    out.push(
      'Submission Queue Entry Size',
      kv('  Max', 2 ** (x.sqes >> 4), 29),
      kv('  Min', 2 ** (x.sqes & 0xf), 29),
      'Completion Queue Entry Size',
      kv('  Max', 2 ** (x.cqes >> 4), 29),
      kv('  Min', 2 ** (x.cqes & 0xf), 29),
    );
  }
  out.push(
    kv('Number of Namespaces', d.nn, 29),
    kv('Compare Command', sup((d.oncs & 1) !== 0), 29),
    kv('Write Uncorrectable Command', sup((d.oncs & 2) !== 0), 29),
    kv('Dataset Management Command', sup((d.oncs & 4) !== 0), 29),
    kv('Write Zeroes Command', sup((d.oncs & 8) !== 0), 29),
    kv('Set Features Save Field', sup((d.oncs & 16) !== 0), 29),
    kv('Reservations', sup((d.oncs & 32) !== 0), 29),
    kv('Timestamp', sup((d.oncs & 64) !== 0), 29),
    kv('Copy', sup((d.oncs & 256) !== 0), 29),
    kv('Volatile Write Cache', (d.vwc & 1) !== 0 ? 'Present' : 'Not Present', 29),
  );
  if (x !== undefined) {
    out.push(
      kv('Atomic Write Unit (Normal)', x.awun + 1, 29),
      kv('Atomic Write Unit (PFail)', x.awupf + 1, 29),
    );
  }
  out.push(
    kv('Atomic Compare & Write Unit', d.acwu + 1, 29),
    kv('Fused Compare & Write', sup((d.fuses & 1) !== 0), 29),
    'Scatter-Gather List',
    kv('  SGL Command Set', sup((d.sgls & 3) !== 0), 29),
    kv('  SGL Keyed', sup((d.sgls & 4) !== 0), 29),
    kv('  SGL Bit Bucket Descriptor', sup((d.sgls & (1 << 16)) !== 0), 29),
    kv('  SGL Metadata Pointer', sup((d.sgls & (1 << 17)) !== 0), 29),
    kv('  Oversized SGL', sup((d.sgls & (1 << 18)) !== 0), 29),
    kv('  SGL Metadata Address', sup((d.sgls & (1 << 19)) !== 0), 29),
    kv('  SGL Offset', sup((d.sgls & (1 << 20)) !== 0), 29),
    kv('  Transport SGL Data Block', sup((d.sgls & (1 << 21)) !== 0), 29),
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
    return out;
  }
  if (x !== undefined && d.cntrltype !== 2) out.push(...powerStates(x));
  out.push(...health(decodeHealthLog(await c.getLogPage(LogPage.Health, 512))));
  out.push('', 'Active Namespaces', '=================');
  for (const nsid of await c.activeNamespaces()) {
    const ns = await c.identifyNamespace(nsid);
    const desc = await c.namespaceDescriptors(nsid).catch(() => ({}) as NamespaceDescriptors);
    out.push(...namespace(nsid, ns, desc));
  }
  return out;
}

function versionOf(vs: number): string {
  const tert = vs & 0xff;
  return `${vs >>> 16}.${(vs >>> 8) & 0xff}${tert ? `.${tert}` : ''}`;
}

function powerStates(x: NonNullable<import('@storkit/nvme-spec').IdentifyController['details']>): string[] {
  const p = x.ps0;
  const watts = (p.maxPowerCw * (p.mps ? 0.0001 : 0.01)).toFixed(2);
  return [
    '',
    'Power Management',
    '================',
    kv('Number of Power States', x.npss + 1, 33),
    'Power State #0:',
    kv('  Max Power', `${watts} W`, 33),
    kv('  Non-Operational State', p.nops ? 'Non-Operational' : 'Operational', 33),
    kv('  Entry Latency', p.enlat ? `${p.enlat} microseconds` : 'Not Reported', 33),
    kv('  Exit Latency', p.exlat ? `${p.exlat} microseconds` : 'Not Reported', 33),
    kv('  Relative Read Throughput', p.rrt, 33),
    kv('  Relative Read Latency', p.rrl, 33),
    kv('  Relative Write Throughput', p.rwt, 33),
    kv('  Relative Write Latency', p.rwl, 33),
  ];
}

function health(h: ReturnType<typeof decodeHealthLog>): string[] {
  const ok = (bit: number): string => ((h.criticalWarning & bit) !== 0 ? 'WARNING' : 'OK');
  return [
    '',
    'Health Information',
    '==================',
    'Critical Warnings:',
    kv('  Available Spare Space', ok(1), 29),
    kv('  Temperature', ok(2), 29),
    kv('  Device Reliability', ok(4), 29),
    kv('  Read Only', (h.criticalWarning & 8) !== 0 ? 'Yes' : 'No', 29),
    kv('  Volatile Memory Backup', ok(16), 29),
    kv('Current Temperature', `${h.temperature} Kelvin (${h.temperature - 273} Celsius)`, 29),
    kv('Available Spare', `${h.availableSpare}%`, 29),
    kv('Available Spare Threshold', `${h.availableSpareThreshold}%`, 29),
    kv('Life Percentage Used', `${h.percentageUsed}%`, 29),
    kv('Data Units Read', h.dataUnitsRead, 29),
    kv('Data Units Written', h.dataUnitsWritten, 29),
    kv('Host Read Commands', h.hostReadCommands, 29),
    kv('Host Write Commands', h.hostWriteCommands, 29),
    kv('Power Cycles', h.powerCycles, 29),
    kv('Power On Hours', `${h.powerOnHours} hours`, 29),
    kv('Unsafe Shutdowns', h.unsafeShutdowns, 29),
    kv('Unrecoverable Media Errors', h.mediaErrors, 29),
    kv('Lifetime Error Log Entries', h.errorLogEntries, 29),
  ];
}

function namespace(nsid: number, ns: IdentifyNamespace, desc: NamespaceDescriptors): string[] {
  const gib = (n: number): string => `${n} (${Math.floor((n * ns.blockSize) / 2 ** 30)}GiB)`;
  const dealloc = ns.dlfeat & 7;
  const out = [
    `Namespace ID:${nsid}`,
    kv('Deallocated Read Value', dealloc === 1 ? 'All 0x00' : dealloc === 2 ? 'All 0xFF' : 'Unknown'),
    kv('Namespace Sharing Capabilities', (ns.nmic & 1) !== 0 ? 'Multiple Controllers' : 'Private'),
    kv('Size (in LBAs)', gib(ns.nsze)),
    kv('Capacity (in LBAs)', gib(ns.ncap)),
    kv('Utilization (in LBAs)', gib(ns.nuse)),
    kv('Thin Provisioning', sup((ns.nsfeat & 1) !== 0)),
    kv('Per-NS Atomic Units', yes((ns.nsfeat & 2) !== 0)),
    kv('NGUID/EUI64 Never Reused', yes((ns.nsfeat & 8) !== 0)),
    kv('Namespace Write Protected', yes(((ns.nsattr ?? 0) & 1) !== 0)),
  ];
  if (!ns.nguid.every((b) => b === 0)) out.push(kv('NGUID', hex(ns.nguid)));
  if (desc.uuid) out.push(kv('UUID', bytesToUuid(desc.uuid)));
  const formats = ns.lbaFormats ?? [{ dataSize: ns.blockSize, metadataSize: 0, relativePerformance: 0 }];
  out.push(
    kv('Number of LBA Formats', formats.length),
    kv('Current LBA Format', `LBA Format #${String(ns.currentLbaFormat ?? 0).padStart(2, '0')}`),
    ...formats.map(
      (f, i) =>
        `LBA Format #${String(i).padStart(2, '0')}: Data Size: ${String(f.dataSize).padStart(5)}  Metadata Size: ${String(f.metadataSize).padStart(5)}`,
    ),
    '',
  );
  return out;
}
