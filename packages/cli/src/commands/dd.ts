// storkit dd: SPDK's spdk_dd. Copies between files (--if/--of) and bdevs of an SPDK JSON config
// (--ib/--ob; lvols by "lvstore/lvol", found by examine), with a progress line on a terminal.
import { readFileSync } from 'node:fs';
import { startApp } from '@storkit/reactor';

import { type Command, UsageError } from '../command.js';
import type { DdArgs, DdReport } from '../dd/reactor.js';

const USAGE = `usage: storkit dd (--if FILE | --ib BDEV) (--of FILE | --ob BDEV) [--json CONFIG] [options]

SPDK's spdk_dd: copy between files and the bdevs of an SPDK JSON config (its "bdev" section;
lvstores on those bdevs are found by examine, their lvols named "lvstore/lvol").

  --if FILE / --ib BDEV   input file / input bdev
  --of FILE / --ob BDEV   output file (created if missing, not truncated) / output bdev
  --json FILE             SPDK JSON config (required with --ib or --ob)
  --bs SIZE               block size of the copy in bytes (default 4096; a multiple of the bdevs')
  --count N               copy N blocks of --bs (default: all of the input)
  --skip N                skip N blocks of --bs at the start of the input
  --seek N                skip N blocks of --bs at the start of the output
  --qd N                  copies in flight (default 2)`;

function num(v: string | undefined, what: string, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${what} needs an integer >= ${min}`);
  return n;
}

export function parseDd(argv: string[]): DdArgs {
  const a: Partial<DdArgs> & { bs: number; skip: number; seek: number; qd: number } = {
    bs: 4096,
    skip: 0,
    seek: 0,
    qd: 2,
  };
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const take = () => {
      if (v === undefined) throw new UsageError(`${k} needs a value`);
      i++;
      return v;
    };
    switch (k) {
      case '--if':
        a.inFile = take();
        break;
      case '--ib':
        a.inBdev = take();
        break;
      case '--of':
        a.outFile = take();
        break;
      case '--ob':
        a.outBdev = take();
        break;
      case '--json':
      case '-c':
        json = take();
        break;
      case '--bs':
        a.bs = num(take(), '--bs', 1);
        break;
      case '--count':
        a.count = num(take(), '--count', 0);
        break;
      case '--skip':
        a.skip = num(take(), '--skip', 0);
        break;
      case '--seek':
        a.seek = num(take(), '--seek', 0);
        break;
      case '--qd':
        a.qd = num(take(), '--qd', 1);
        break;
      default:
        throw new UsageError(`unknown option '${k}'`);
    }
  }
  if ((a.inFile === undefined) === (a.inBdev === undefined))
    throw new UsageError('give one of --if and --ib');
  if ((a.outFile === undefined) === (a.outBdev === undefined))
    throw new UsageError('give one of --of and --ob');
  if ((a.inBdev !== undefined || a.outBdev !== undefined) && json === undefined)
    throw new UsageError('--ib and --ob need --json CONFIG');
  let config: unknown = { subsystems: [] };
  if (json !== undefined) {
    try {
      config = JSON.parse(readFileSync(json, 'utf8'));
    } catch (e) {
      throw new UsageError(`cannot read ${json}: ${(e as Error).message}`);
    }
  }
  return { ...a, config } as DdArgs;
}

/** spdk_dd's "Copying: done/total [unit] (rate unitps)": kB below 1 MiB, MB above. */
export function progressLine(copied: number, total: number, seconds: number, final: boolean): string {
  const mb = total >= 1024 * 1024;
  const unit = mb ? 1024 * 1024 : 1024;
  const u = mb ? 'MB' : 'kB';
  const rate = seconds > 0 ? Math.floor(copied / unit / seconds) : 0;
  return `Copying: ${Math.floor(copied / unit)}/${Math.floor(total / unit)} [${u}] (${final ? 'average ' : ''}${rate} ${u}ps)`;
}

export const dd: Command = {
  name: 'dd',
  summary: 'SPDK spdk_dd: copy between files and bdevs (lvols included), with a progress line',
  usage: USAGE,
  async run(argv) {
    const args = parseDd(argv);
    const tty = process.stdout.isTTY === true;
    let failed: string | null = null;
    let t0 = performance.now();
    const app = await startApp({
      mask: '0x1',
      main: new URL('../dd/reactor.js', import.meta.url),
      mainArg: args,
      modules: [new URL(import.meta.resolve('@storkit/app/reactor-modules/lvol'))],
      onReport: (v) => {
        const r = v as DdReport;
        if (r.type === 'start') t0 = performance.now();
        else if (r.type === 'progress') {
          if (tty)
            process.stdout.write(
              `\r\x1b[2K${progressLine(r.copied, r.total, (performance.now() - t0) / 1000, false)}`,
            );
        } else if (r.type === 'done') {
          process.stdout.write(
            `${tty ? '\r\x1b[2K' : ''}${progressLine(r.copied, r.total, r.seconds, true)}\n`,
          );
        } else failed = r.message;
      },
    });
    const res = await app.done;
    if (failed !== null) {
      process.stderr.write(`storkit dd: ${failed}\n`);
      return 1;
    }
    if (res.error) {
      process.stderr.write(`storkit dd: ${res.error}\n`);
      return 1;
    }
    return res.code;
  },
};
