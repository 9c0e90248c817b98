import net from 'node:net';

import { RpcError } from './errors.js';
import { JsonFramer } from './framing.js';

export interface RpcTarget {
  /** Unix socket path, or a loopback host when `port` is given. */
  readonly address: string;
  readonly port?: number;
}

/** A JSON-RPC client over one connection; calls may overlap and are matched by id. */
export class RpcClient {
  readonly #sock: net.Socket;
  readonly #framer = new JsonFramer(64 << 20);
  readonly #pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  #nextId = 1;
  #closedError: Error | undefined;

  private constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.on('data', (chunk) => this.#onData(chunk));
    const fail = (e: Error) => {
      this.#closedError ??= e;
      for (const p of this.#pending.values()) p.rej(this.#closedError);
      this.#pending.clear();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed by the server')));
  }

  static connect(target: RpcTarget | string, timeoutMs = 5000): Promise<RpcClient> {
    const t = typeof target === 'string' ? { address: target } : target;
    return new Promise((res, rej) => {
      const sock = t.port === undefined ? net.connect(t.address) : net.connect(t.port, t.address);
      const timer = setTimeout(() => {
        sock.destroy();
        rej(new Error(`timed out connecting to ${t.address}${t.port ? `:${t.port}` : ''}`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        res(new RpcClient(sock));
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        rej(e);
      });
    });
  }

  /** Call a method; resolves to its result, rejects with RpcError(code, message) on an error response. */
  call<T = unknown>(method: string, params?: unknown): Promise<T> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    const req: Record<string, unknown> = { jsonrpc: '2.0', method, id };
    if (params !== undefined) req.params = params;
    return new Promise<T>((res, rej) => {
      this.#pending.set(id, { res: res as (v: unknown) => void, rej });
      this.#sock.write(JSON.stringify(req));
    });
  }

  /** Send raw text (tests of malformed input). */
  sendRaw(text: string | Buffer): void {
    this.#sock.write(text);
  }

  close(): void {
    this.#sock.end();
  }

  #onData(chunk: Buffer): void {
    for (const f of this.#framer.push(chunk)) {
      if (f.kind !== 'value') continue;
      const msg = JSON.parse(f.text) as unknown;
      for (const r of Array.isArray(msg) ? msg : [msg]) this.#settle(r as Record<string, unknown>);
    }
  }

  #settle(r: Record<string, unknown>): void {
    const p = typeof r.id === 'number' ? this.#pending.get(r.id) : undefined;
    if (!p) return;
    this.#pending.delete(r.id as number);
    const err = r.error as { code: number; message: string; data?: unknown } | undefined;
    if (err) p.rej(new RpcError(err.code, err.message, err.data));
    else p.res(r.result);
  }
}
