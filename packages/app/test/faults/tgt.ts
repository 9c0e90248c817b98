// `storkit tgt` as a child process, for tests that kill it: start with a config, wait for its
// banner, ask it things over RPC, SIGKILL it, start it again on the same files and sockets.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient } from '@storkit/rpc';

import type { SpdkConfig } from '../../src/index.js';

const MAIN = fileURLToPath(new URL('../../../../cli/dist/src/main.js', import.meta.url));

export class TgtProcess {
  readonly p: ChildProcess;
  readonly rpcPath: string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #out = '';

  private constructor(p: ChildProcess, rpcPath: string) {
    this.p = p;
    this.rpcPath = rpcPath;
    p.stdout!.on('data', (d) => (this.#out += d));
    p.stderr!.on('data', (d) => (this.#out += d));
    this.exit = new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
  }

  get pid(): number {
    return this.p.pid!;
  }

  get output(): string {
    return this.#out;
  }

  /** Start `storkit tgt -m MASK --json <dir>/tgt.json` and resolve once it runs. */
  static async start(config: SpdkConfig, dir: string, mask = '0x3'): Promise<TgtProcess> {
    const cfg = join(dir, 'tgt.json');
    writeFileSync(cfg, JSON.stringify(config));
    const rpcPath = join(dir, 'rpc.sock');
    const p = spawn(
      process.execPath,
      [MAIN, 'tgt', '-m', mask, '-r', rpcPath, '--json', cfg, '--vhost-dir', dir, '--no-stats'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const t = new TgtProcess(p, rpcPath);
    const until = Date.now() + 60_000;
    let exited = false;
    void t.exit.then(() => (exited = true));
    while (!/storkit tgt: running/.test(t.#out)) {
      if (exited || Date.now() > until) throw new Error(`storkit tgt did not start:\n${t.#out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return t;
  }

  async rpc<T>(method: string, params?: unknown): Promise<T> {
    const c = await RpcClient.connect(this.rpcPath);
    try {
      return await c.call<T>(method, params);
    } finally {
      c.close();
    }
  }

  /** kill -9: no shutdown path runs, nothing is flushed by the target. */
  async kill9(): Promise<void> {
    this.p.kill('SIGKILL');
    await this.exit;
  }

  /** An orderly stop (SIGTERM); resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.p.kill('SIGTERM');
    return (await this.exit).code;
  }
}
