// SPDK v24.01's spdk_tgt and NVMe tools as peers of storkit's host and target, for this package's
// tests and the app's. Found at `<repo root>/../shared/peers` (the checkout's sibling, in CI
// too). A missing peer fails loudly.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `<repo root>/../shared/peers`, from this file's place in packages/nvme/dist/src/testing. */
export const PEERS = fileURLToPath(new URL('../../../../../../shared/peers/', import.meta.url));

/** The path of one of SPDK's programs (spdk_tgt, rpc.py, spdk_nvme_identify, ...). */
export function spdkBin(name: string): string {
  const p = `${PEERS}spdk/bin/${name}`;
  if (!existsSync(p))
    throw new Error(`SPDK peer ${name} missing: expected ${p} (see ../shared/peers/README.md)`);
  return p;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface SpdkTgt {
  readonly dir: string;
  readonly sock: string;
  /** rpc.py METHOD ARGS... against this target; its stdout parsed as JSON when it is JSON. */
  rpc(...args: string[]): Promise<unknown>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Start SPDK's spdk_tgt on core `core` with `config` (SPDK JSON config), 256 MiB of hugepage
 * memory and no PCI access, and wait until its subsystems are initialized (start-up takes seconds
 * on a loaded 2-core machine).
 */
export async function startSpdkTgt(config: object, core = 0): Promise<SpdkTgt> {
  const bin = spdkBin('spdk_tgt');
  const rpcPy = spdkBin('rpc.py');
  const dir = await mkdtemp(join(tmpdir(), 'spdk-tgt-'));
  const sock = join(dir, 'spdk.sock');
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  const logFile = join(dir, 'log');
  const { openSync } = await import('node:fs');
  const fd = openSync(logFile, 'w');
  const p: ChildProcess = spawn(
    bin,
    [
      '-m',
      `0x${(1 << core).toString(16)}`,
      '-s',
      '256',
      '-u',
      // Other SPDK programs may run on this machine at the same time (a shared CI host).
      '--disable-cpumask-locks',
      '-r',
      sock,
      '--json',
      join(dir, 'config.json'),
    ],
    { stdio: ['ignore', fd, fd] },
  );
  let exited: number | null = null;
  p.on('exit', (c) => (exited = c ?? -1));
  const rpc = async (...args: string[]): Promise<unknown> => {
    const r = await run(rpcPy, ['-s', sock, '-t', '60', ...args], { timeout: 90_000 });
    try {
      return JSON.parse(r.stdout);
    } catch {
      return r.stdout;
    }
  };
  const stop = async (): Promise<void> => {
    if (exited === null) {
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await new Promise((r) => (exited !== null ? r(null) : p.once('exit', r)));
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 120_000;
  for (;;) {
    if (exited !== null) {
      const log = await readFile(logFile, 'utf8');
      await stop();
      throw new Error(`spdk_tgt exited (${exited}) during start-up:\n${log}`);
    }
    try {
      await run(rpcPy, ['-s', sock, '-t', '5', 'framework_wait_init'], { timeout: 30_000 });
      break;
    } catch (e) {
      if (Date.now() > until) {
        await stop();
        throw new Error(`spdk_tgt did not initialize within 120 s: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { dir, sock, rpc, log: () => readFile(logFile, 'utf8'), stop };
}

/** An SPDK tool's exit code and output (stdout and stderr). */
export async function spdkTool(
  name: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number; out: string }> {
  try {
    const r = await run(spdkBin(name), args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: unknown; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}
