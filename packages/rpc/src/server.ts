import { chmodSync, lstatSync, type Stats, unlinkSync } from 'node:fs';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';

import { RpcCode, RpcError, toRpcError } from './errors.js';
import { JsonFramer } from './framing.js';
import type { AnyMethodDef, MethodContext, MethodDef, MethodSpec } from './method.js';
import { type InertNote, validate } from './schema.js';

export interface RpcServerOptions {
  /** Largest single request (or batch) in bytes; a larger one is answered with a parse error and the connection closed. */
  maxRequestBytes?: number;
  /** Largest batch (number of requests). */
  maxBatch?: number;
  /** Called for each request (method name) at debug level; never on the I/O path. */
  log?: (line: string) => void;
  /**
   * Permission bits of the Unix socket file (default 0o600: only this user may connect; the
   * control plane has no authentication of its own, so the file mode is its access control).
   */
  socketMode?: number;
  /** Values given for inert params (accepted, not acted on) that differ from SPDK's default. */
  onInert?: (method: string, notes: InertNote[]) => void;
}

interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

const DEFAULT_MAX_REQUEST = 4 << 20;

/**
 * A JSON-RPC 2.0 server in SPDK's style: Unix socket (and optionally loopback TCP), back-to-back
 * JSON framing, batches, params validated against each method's schema before the handler runs,
 * startup/runtime method states. Requests are dispatched in arrival order and answered as they
 * complete (matched by id), so a waiting request holds up no other. No input closes anything but the offending connection.
 */
export class RpcServer {
  readonly #methods = new Map<string, AnyMethodDef>();
  readonly #servers: net.Server[] = [];
  readonly #sockets = new Set<net.Socket>();
  readonly #unixPaths: string[] = [];
  readonly #maxRequest: number;
  readonly #maxBatch: number;
  readonly #log: (line: string) => void;
  readonly #socketMode: number;
  readonly #onInert: ((method: string, notes: InertNote[]) => void) | undefined;
  #state: 'startup' | 'runtime' = 'runtime';

  constructor(opts: RpcServerOptions = {}) {
    this.#maxRequest = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST;
    this.#maxBatch = opts.maxBatch ?? 1024;
    this.#log = opts.log ?? (() => {});
    this.#socketMode = opts.socketMode ?? 0o600;
    this.#onInert = opts.onInert;
    if (!Number.isInteger(this.#socketMode) || this.#socketMode < 0 || this.#socketMode > 0o777)
      throw new RangeError(`socketMode ${opts.socketMode} is not a permission mode (0 to 0o777)`);
  }

  get state(): 'startup' | 'runtime' {
    return this.#state;
  }

  /** `startup` holds runtime methods back until framework_start_init moves to `runtime`. */
  setState(s: 'startup' | 'runtime'): void {
    this.#state = s;
  }

  register<P>(def: MethodDef<P>): void {
    for (const n of [def.name, ...(def.aliases ?? [])]) {
      if (this.#methods.has(n)) throw new Error(`RPC method '${n}' registered twice`);
      this.#methods.set(n, def);
    }
  }

  /** Specs of every method (one entry per method, aliases not repeated). */
  methods(): MethodSpec[] {
    return [...new Set(this.#methods.values())];
  }

  has(name: string): boolean {
    return this.#methods.has(name);
  }

  /** Client connections open now (Unix and TCP). */
  get connectionCount(): number {
    return this.#sockets.size;
  }

  /**
   * Listen on a Unix socket path, its file created with `socketMode` (no moment with wider
   * permissions). A stale socket file of this user (nobody listening) is replaced; a live one is
   * EADDRINUSE. A path that is not a socket, or a socket another user owns, is refused and left
   * alone (EEXIST, EPERM): taking it over would hand that user's clients to this server.
   */
  async listenUnix(path: string): Promise<void> {
    const st = lstatOrNull(path);
    if (st) {
      if (!st.isSocket()) throw socketPathError('EEXIST', `${path} exists and is not a socket`);
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid)
        throw socketPathError(
          'EPERM',
          `${path} is a socket owned by uid ${st.uid}, not by this user (uid ${uid}): refusing to replace it`,
        );
      if (await isLive(path)) throw socketPathError('EADDRINUSE', `${path} is in use by a running server`);
      unlinkSync(path);
    }
    await this.#listen({ path }, this.#socketMode);
    this.#unixPaths.push(path);
    chmodSync(path, this.#socketMode);
  }

  /** Listen on TCP; only loopback addresses are accepted (the control plane has no authentication). */
  async listenTcp(host: string, port: number): Promise<number> {
    if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host))
      throw new Error(`RPC over TCP is loopback-only; '${host}' is not a loopback address`);
    const srv = await this.#listen({ host, port });
    return (srv.address() as net.AddressInfo).port;
  }

  async #listen(opts: net.ListenOptions, mode?: number): Promise<net.Server> {
    const srv = net.createServer((s) => this.#accept(s));
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      // A Unix socket file takes its mode from the umask at bind(), which Node does inside
      // listen() synchronously: narrow the umask around that call so the file never exists with
      // wider permissions (a worker cannot change the umask; there the chmod after listen does it).
      const old = mode !== undefined && isMainThread ? process.umask(~mode & 0o777) : undefined;
      try {
        srv.listen(opts, () => {
          srv.off('error', rej);
          res();
        });
      } finally {
        if (old !== undefined) process.umask(old);
      }
    });
    this.#servers.push(srv);
    return srv;
  }

  /** Stop listening, drop connections, remove socket files. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
    this.#servers.length = 0;
    for (const p of this.#unixPaths.splice(0)) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
  }

  #accept(sock: net.Socket): void {
    this.#sockets.add(sock);
    const framer = new JsonFramer(this.#maxRequest);
    sock.on('data', (chunk) => {
      for (const f of framer.push(chunk)) {
        if (f.kind === 'error') {
          const msg =
            f.reason === 'too-large' ? `request larger than ${this.#maxRequest} bytes` : 'Parse error';
          write(sock, errorResponse(null, new RpcError(RpcCode.ParseError, msg)));
          // Stop reading, and close once the error is out: a paused socket would never see the
          // client's FIN, and the connection (its fd) would stay open after the client left.
          sock.pause();
          sock.end(() => sock.destroy());
          return;
        }
        // As SPDK does: dispatch each request as soon as it is parsed, answer when it completes
        // (answers carry ids). A request that waits (framework_wait_init) holds up no other.
        void this.handleText(f.text).then((out) => {
          if (out !== undefined) write(sock, out);
        });
      }
    });
    sock.on('error', () => {}); // a client that vanishes is not our error
    sock.on('close', () => this.#sockets.delete(sock));
  }

  /** Handle one framed request text (single or batch). Resolves to the response, or undefined when nothing is owed. */
  async handleText(text: string): Promise<JsonRpcResponse | JsonRpcResponse[] | undefined> {
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      return errorResponse(null, new RpcError(RpcCode.ParseError, 'Parse error'));
    }
    if (Array.isArray(req)) {
      if (req.length === 0)
        return errorResponse(null, new RpcError(RpcCode.InvalidRequest, 'Invalid request: empty batch'));
      if (req.length > this.#maxBatch)
        return errorResponse(
          null,
          new RpcError(RpcCode.InvalidRequest, `Invalid request: batch over ${this.#maxBatch}`),
        );
      const all = await Promise.all(req.map((r) => this.handleOne(r)));
      const out = all.filter((r): r is JsonRpcResponse => r !== undefined);
      return out.length ? out : undefined;
    }
    return this.handleOne(req);
  }

  /** Handle one parsed request object. */
  async handleOne(req: unknown): Promise<JsonRpcResponse | undefined> {
    if (typeof req !== 'object' || req === null || Array.isArray(req))
      return errorResponse(null, new RpcError(RpcCode.InvalidRequest, 'Invalid request: not an object'));
    const r = req as Record<string, unknown>;
    const hasId = 'id' in r;
    const id = r.id ?? null;
    if (hasId && id !== null && typeof id !== 'string' && typeof id !== 'number')
      return errorResponse(
        null,
        new RpcError(RpcCode.InvalidRequest, 'Invalid request: id must be a string, number or null'),
      );
    if (r.jsonrpc !== '2.0')
      return errorResponse(
        id,
        new RpcError(RpcCode.InvalidRequest, "Invalid request: jsonrpc must be '2.0'"),
      );
    if (typeof r.method !== 'string')
      return errorResponse(
        id,
        new RpcError(RpcCode.InvalidRequest, 'Invalid request: method must be a string'),
      );
    const res = await this.call(r.method, r.params);
    if (!hasId) return undefined; // a notification: no answer, even on error
    return res.error ? errorResponse(id, res.error) : { jsonrpc: '2.0', id, result: res.result };
  }

  /** Call a method in-process with the same validation as over the wire (used by config loading). */
  async call(method: string, params: unknown): Promise<{ result?: unknown; error?: RpcError }> {
    const def = this.#methods.get(method);
    if (!def) return { error: new RpcError(RpcCode.MethodNotFound, `Method not found: ${method}`) };
    const allowed = def.state ?? 'runtime';
    if (allowed !== 'both' && allowed !== this.#state) {
      const msg =
        allowed === 'runtime'
          ? `Method '${method}' may only be called after the framework is initialized (framework_start_init)`
          : `Method '${method}' may only be called before framework_start_init (start with --wait-for-rpc)`;
      return { error: new RpcError(RpcCode.InvalidState, msg) };
    }
    let p: unknown;
    try {
      if (params !== undefined && params !== null && (typeof params !== 'object' || Array.isArray(params)))
        throw RpcError.invalidParams('params must be an object');
      if (!def.params) {
        if (params && Object.keys(params).length)
          throw RpcError.invalidParams(`${method} takes no parameters`);
        p = {};
      } else {
        const notes: InertNote[] = [];
        p = validate(def.params, params ?? {}, '', 0, notes);
        if (notes.length) this.#onInert?.(method, notes);
      }
    } catch (e) {
      return { error: toRpcError(e) };
    }
    this.#log(`rpc ${method}`);
    try {
      const ctx: MethodContext = { state: this.#state };
      const result = await def.handler(p, ctx);
      return { result: result === undefined ? true : result };
    } catch (e) {
      return { error: toRpcError(e) };
    }
  }
}

function errorResponse(id: unknown, e: RpcError): JsonRpcResponse {
  const error: JsonRpcResponse['error'] = { code: e.code, message: e.message };
  if (e.data !== undefined) error.data = e.data;
  return { jsonrpc: '2.0', id, error };
}

function write(sock: net.Socket, msg: unknown): void {
  if (!sock.destroyed && sock.writable) sock.write(`${JSON.stringify(msg)}\n`);
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function socketPathError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function isLive(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}
