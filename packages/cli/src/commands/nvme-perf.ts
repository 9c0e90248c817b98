import { currentCpu, pinThread } from '@storkit/native';
import { type HostQpair, NvmeController, parseTransportId } from '@storkit/nvme';
import { runPerf, type Workload } from '@storkit/nvme/perf';

import { type Command, UsageError } from '../command.js';

const USAGE = `usage: storkit nvme-perf -r TRID [-r TRID ...] -q DEPTH -o BYTES -w WORKLOAD -t SECONDS [options]

Drives NVMe namespaces (NVMe/TCP or local PCIe controllers) from polled I/O qpairs, like SPDK's perf.
  -r TRID      'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN' or
               'trtype:PCIe traddr:0000:04:00.0'; several -r drive several controllers at once
  -q DEPTH     I/Os kept in flight per controller (default 128), spread over its qpairs
  -P QPAIRS    I/O qpairs (connections) to use (default 1)
  -o BYTES     I/O size (default 4096)
  -w WORKLOAD  read | write | randread | randwrite | rw | randrw
  -M PERCENT   reads in rw/randrw (default 50)
  -t SECONDS   run time (default 10)
  -c MASK      core mask; the tool pins itself to its first core (e.g. 0x2)
  -n NSID      namespace (default 1)
  --warmup S   seconds to run before measuring (default 0)
  --hdgst / --ddgst   enable NVMe/TCP header / data digests
  --sock KIND  NVMe/TCP I/O qpair sockets: native (default; one polled socket group) | node (node:net)`;

const WORKLOADS = ['read', 'write', 'randread', 'randwrite', 'rw', 'randrw'];

function num(flag: string, v: string | undefined, lo: number, hi: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi)
    throw new UsageError(`${flag} takes a number in [${lo}, ${hi}]`);
  return n;
}

function firstCore(mask: string): number {
  const m = mask.startsWith('[') ? Number(mask.slice(1).split(/[,\]-]/)[0]) : Number(BigInt(mask));
  if (!Number.isInteger(m) || m < 0) throw new UsageError(`bad core mask '${mask}'`);
  if (mask.startsWith('[')) return m;
  for (let i = 0; i < 64; i++) if ((BigInt(mask) >> BigInt(i)) & 1n) return i;
  throw new UsageError('empty core mask');
}

const f2 = (x: number): string => x.toFixed(2).padStart(10);

export const nvmePerf: Command = {
  name: 'nvme-perf',
  summary: 'NVMe/TCP and PCIe load generator: IOPS, MiB/s, latency percentiles (SPDK perf)',
  usage: USAGE,
  async run(argv) {
    const trids: string[] = [];
    let q = 128;
    let o = 4096;
    let w: Workload = 'randread';
    let m = 50;
    let t = 10;
    let nsid = 1;
    let warmup = 0;
    let mask: string | undefined;
    let hdgst = false;
    let ddgst = false;
    let nq = 1;
    let sock: 'native' | 'node' = 'native';
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      const v = (): string | undefined => argv[++i];
      if (a === '-r') trids.push(v() ?? '');
      else if (a === '-q') q = num('-q', v(), 1, 65535);
      else if (a === '-P') nq = num('-P', v(), 1, 256);
      else if (a === '-o') o = num('-o', v(), 512, 16 << 20);
      else if (a === '-w') {
        const x = v() ?? '';
        if (!WORKLOADS.includes(x)) throw new UsageError(`-w takes ${WORKLOADS.join('|')}`);
        w = x as Workload;
      } else if (a === '-M') m = num('-M', v(), 0, 100);
      else if (a === '-t') t = num('-t', v(), 0.1, 86400);
      else if (a === '-n') nsid = num('-n', v(), 1, 0xfffffffe);
      else if (a === '-c') mask = v();
      else if (a === '--warmup') warmup = num('--warmup', v(), 0, 3600);
      else if (a === '--hdgst') hdgst = true;
      else if (a === '--ddgst') ddgst = true;
      else if (a === '--sock') {
        const x = v();
        if (x !== 'native' && x !== 'node') throw new UsageError('--sock takes native|node');
        sock = x;
      } else throw new UsageError(`unknown option '${a}'`);
    }
    if (trids.length === 0 || trids.some((x) => x === '')) throw new UsageError('-r TRID is required');
    if (nq > q) throw new UsageError(`-P ${nq} needs at least ${nq} I/Os in flight (-q)`);
    const trs = trids.map((x) => parseTransportId(x));
    if (mask !== undefined) pinThread(firstCore(mask));
    const ctrls: NvmeController[] = [];
    try {
      for (const tr of trs) ctrls.push(await NvmeController.connect(tr, { hdgst, ddgst }));
      const qpss: HostQpair[][] = [];
      for (const c of ctrls) {
        const qps = [];
        for (let i = 0; i < nq; i++)
          qps.push(
            await c.allocIoQpair({ depth: Math.min(Math.ceil(q / nq) + 1, c.maxQueueEntries), socket: sock }),
          );
        qpss.push(qps);
      }
      const cpuBefore = process.cpuUsage();
      // Every controller at once, on this one core (SPDK perf's one worker over several namespaces).
      const rs = await Promise.all(
        ctrls.map((c, i) =>
          runPerf(c, qpss[i], {
            nsid,
            queueDepth: q,
            ioSize: o,
            workload: w,
            readPercent: m,
            seconds: t,
            warmup,
          }),
        ),
      );
      const cpu = process.cpuUsage(cpuBefore);
      for (let i = 0; i < ctrls.length; i++) for (const qp of qpss[i]) await ctrls[i].freeIoQpair(qp);
      const names = trs.map((tr) => {
        const where = tr.trtype === 'PCIe' ? tr.traddr : `addr:${tr.traddr} subnqn:${tr.subnqn}`;
        return `${tr.trtype} (${where}) NSID ${nsid} from core ${currentCpu()}`;
      });
      const width = Math.max(...names.map((n) => n.length));
      const ios = rs.reduce((a, r) => a + r.ios, 0);
      const total = {
        iops: rs.reduce((a, r) => a + r.iops, 0),
        mibps: rs.reduce((a, r) => a + r.mibps, 0),
        avgUs: ios > 0 ? rs.reduce((a, r) => a + r.avgUs * r.ios, 0) / ios : 0,
        minUs: Math.min(...rs.map((r) => r.minUs)),
        maxUs: Math.max(...rs.map((r) => r.maxUs)),
      };
      const row = (n: string, r: typeof total): string =>
        `${n.padEnd(width)} : ${f2(r.iops)} ${f2(r.mibps)} ${f2(r.avgUs)} ${f2(r.minUs)} ${f2(r.maxUs)}`;
      const lines = [
        `Initialization complete. Launching workers.`,
        '========================================================',
        `${''.padEnd(width)}   ${''.padStart(22)}Latency(us)`,
        `${'Device Information'.padEnd(width)} : ${'IOPS'.padStart(10)} ${'MiB/s'.padStart(10)} ${'Average'.padStart(10)} ${'min'.padStart(10)} ${'max'.padStart(10)}`,
        ...rs.map((r, i) => row(names[i], r)),
        '========================================================',
        row('Total', total),
      ];
      rs.forEach((r, i) => {
        lines.push(
          '',
          `Summary latency data for ${names[i]}:`,
          '=================================================================================',
          ...[1, 10, 25, 50, 75, 90, 99, 99.9, 99.99].map(
            (p) => `${p.toFixed(5).padStart(10)}% : ${r.histogram.percentile(p).toFixed(3).padStart(12)}us`,
          ),
        );
      });
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      lines.push(
        '',
        `I/Os: ${ios} (${rs.reduce((a, r) => a + r.reads, 0)} reads, ${rs.reduce((a, r) => a + r.writes, 0)} writes, ${errors} errors) in ${Math.max(...rs.map((r) => r.seconds)).toFixed(2)} s;` +
          ` host CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
      return errors ? 1 : 0;
    } finally {
      for (const c of ctrls) await c.close();
    }
  },
};
