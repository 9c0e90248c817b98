// What both tests of this example need: a free port, and the command started until its banner.
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Started {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

/** Start a command (node MAIN ARGS); resolve with what it printed once it printed its last banner line. */
export function start(main: string, args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let out = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('stop:')) resolve({ child, lines: out.split('\n'), exited });
    });
    void exited.then((code) => reject(new Error(`${main} exited (${code}) before it was ready:\n${out}`)));
  });
}
