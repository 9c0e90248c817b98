// Helpers of the cli's tests: the storkit command as a child process, `storkit tgt` started and
// awaited, per-test socket paths.
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
let n = 0;
/** A fresh socket path of this process. */
export const sock = (): string => join(tmpdir(), `storkit-cli-${process.pid}-${n++}.sock`);

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to its end, `input` on its stdin (none: stdin closed). */
export function run(file: string, args: string[], input = ''): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
    p.stdin.end(input);
  });
}

/** `storkit ARGS...` with `input` on stdin. */
export const storkit = (args: string[], input = ''): Promise<Ran> =>
  run(process.execPath, [main, ...args], input);

export interface Tgt {
  p: ChildProcess;
  out: () => string;
  exit: Promise<number>;
}

const live = new Set<ChildProcess>();

/** Start `storkit tgt` and resolve once its banner says it runs. */
export function startTgt(args: string[]): Promise<Tgt> {
  const p = spawn(process.execPath, [main, 'tgt', '--no-stats', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(p);
  p.on('exit', () => live.delete(p));
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number>((res) => p.on('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
  return new Promise((res, rej) => {
    const t = setInterval(() => {
      if (/storkit tgt: (running|waiting)/.test(out)) {
        clearInterval(t);
        res({ p, out: () => out, exit });
      }
    }, 50);
    void exit.then((c) => {
      clearInterval(t);
      rej(new Error(`tgt exited ${c} before running:\n${out}`));
    });
  });
}

/** Stop a target started by startTgt (SIGTERM) and wait for it. */
export async function stopTgt(t: Tgt): Promise<number> {
  if (t.p.exitCode === null && t.p.signalCode === null) t.p.kill('SIGTERM');
  return t.exit;
}

/** Kill every target a test left running (a failed assertion skips its own stop). */
export async function killLeftTargets(): Promise<void> {
  const left = [...live];
  for (const p of left) p.kill('SIGKILL');
  await Promise.all(
    left.map(
      (p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(0) : p.on('exit', r))),
    ),
  );
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
