import { currentCpu, pinThread } from '@storkit/native';
import { NvmeController, parseTransportId } from '@storkit/nvme';
import { runPerf, type Workload } from '@storkit/nvme/perf';

import { type Command, UsageError } from '../command.js';

const USAGE = `usage: storkit nvme-perf -r TRID -q DEPTH -o BYTES -w WORKLOAD -t SECONDS [options]

Drives an NVMe/TCP namespace from polled I/O qpairs, like SPDK's perf.
  -r TRID      'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN'
  -q DEPTH     I/Os kept in flight (default 128), spread over the qpairs
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
  summary: 'NVMe/TCP load generator: IOPS, MiB/s, latency percentiles (SPDK perf)',
  usage: USAGE,
  async run(argv) {
    let trid = '';
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
      if (a === '-r') trid = v() ?? '';
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
    if (!trid) throw new UsageError('-r TRID is required');
    const tr = parseTransportId(trid);
    if (mask !== undefined) pinThread(firstCore(mask));
    const c = await NvmeController.connect(tr, { hdgst, ddgst });
    try {
      if (nq > q) throw new UsageError(`-P ${nq} needs at least ${nq} I/Os in flight (-q)`);
      const qps = [];
      for (let i = 0; i < nq; i++)
        qps.push(
          await c.allocIoQpair({ depth: Math.min(Math.ceil(q / nq) + 1, c.maxQueueEntries), socket: sock }),
        );
      const cpuBefore = process.cpuUsage();
      const r = await runPerf(c, qps, {
        nsid,
        queueDepth: q,
        ioSize: o,
        workload: w,
        readPercent: m,
        seconds: t,
        warmup,
      });
      const cpu = process.cpuUsage(cpuBefore);
      for (const qp of qps) await c.freeIoQpair(qp);
      const where = tr.trtype === 'PCIe' ? tr.traddr : `addr:${tr.traddr} subnqn:${tr.subnqn}`;
      const name = `${tr.trtype} (${where}) NSID ${nsid} from core ${currentCpu()}`;
      const h = r.histogram;
      const lines = [
        `Initialization complete. Launching workers.`,
        '========================================================',
        `${''.padEnd(name.length)}   ${''.padStart(22)}Latency(us)`,
        `${'Device Information'.padEnd(name.length)} : ${'IOPS'.padStart(10)} ${'MiB/s'.padStart(10)} ${'Average'.padStart(10)} ${'min'.padStart(10)} ${'max'.padStart(10)}`,
        `${name} : ${f2(r.iops)} ${f2(r.mibps)} ${f2(r.avgUs)} ${f2(r.minUs)} ${f2(r.maxUs)}`,
        '========================================================',
        `${'Total'.padEnd(name.length)} : ${f2(r.iops)} ${f2(r.mibps)} ${f2(r.avgUs)} ${f2(r.minUs)} ${f2(r.maxUs)}`,
        '',
        `Summary latency data for ${name}:`,
        '=================================================================================',
        ...[1, 10, 25, 50, 75, 90, 99, 99.9, 99.99].map(
          (p) => `${p.toFixed(5).padStart(10)}% : ${h.percentile(p).toFixed(3).padStart(12)}us`,
        ),
        '',
        `I/Os: ${r.ios} (${r.reads} reads, ${r.writes} writes, ${r.errors} errors) in ${r.seconds.toFixed(2)} s;` +
          ` host CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return r.errors ? 1 : 0;
    } finally {
      await c.close();
    }
  },
};
