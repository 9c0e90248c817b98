// The real peer as load generator: libiscsi's iscsi-perf (4 KiB random reads, QD 32 and 128)
// against the target served from this process on a RAM LUN. Reports IOPS and the target's own
// CPU time (process.cpuUsage), i.e. IOPS per target CPU-second. Needs libiscsi-bin.
import { spawn } from 'node:child_process';

import { report, runSeconds } from '@storkit/bench';
import { RamBackend } from '@storkit/block/testing';
import { IscsiServer, IscsiTarget } from '../src/index.js';

const SECONDS = runSeconds('ISCSI_PERF_SECONDS', 8);
const ram = new RamBackend({ name: 'Malloc0', blockSize: 4096, numBlocks: 16384 });
const target = new IscsiTarget((n) => (n === 'Malloc0' ? ram : undefined), { max_queue_depth: 128 });
target.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '0' }] });
target.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
const node = target.createTargetNode({
  name: 'disk1',
  pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
  luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
  queue_depth: 128,
});
const server = new IscsiServer(target);
const [portal] = await server.listen(1);
const url = `iscsi://127.0.0.1:${portal.port}/${node.name}/0`;

function perf(qd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('iscsi-perf', ['-t', String(SECONDS), '-m', String(qd), '-b', '1', '-r', url]);
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (out += b));
    c.on('error', reject);
    c.on('close', () => resolve(out));
  });
}

for (const qd of [32, 128]) {
  const cpu0 = process.cpuUsage();
  const out = await perf(qd);
  const cpu = process.cpuUsage(cpu0);
  const m = /iops average (\d+) \((\d+) MB\/s\)\s*$/m.exec(out.replace(/\r/g, '\n'));
  if (!m) {
    console.log(`iscsi-perf QD ${qd}: no result\n${out.slice(-500)}`);
    process.exitCode = 1;
    continue;
  }
  const iops = Number(m[1]);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  console.log(
    `iscsi-perf 4 KiB randread QD ${qd}: ${iops} IOPS, target CPU ${cpuSec.toFixed(2)} s over ${SECONDS} s ` +
      `(${(cpuSec / SECONDS).toFixed(2)} cores), ${Math.round((iops * SECONDS) / cpuSec)} IOPS per target CPU-second`,
  );
  report('libiscsi iscsi-perf against the iSCSI target in this process (node:net), 4 KiB randread', [
    {
      name: `iscsi-perf QD ${qd}`,
      value: iops,
      unit: 'IOPS',
      better: 'higher',
      extra: { 'IOPS per target CPU-s': Math.round((iops * SECONDS) / cpuSec) },
    },
  ]);
}
await server.close();
