// The target application (storkit tgt): reactors, subsystems, the RPC server, config load/save.
import { dirname } from 'node:path';

import { IoatModel } from '@storkit/ioat/testing';
import { type App, type AppResult, startApp } from '@storkit/reactor';
import { type AnyMethodDef, type InertNote, RpcServer, registerBuiltins } from '@storkit/rpc';

import { applyConfig, type SpdkConfig } from './config.js';
import { AppControl } from './control.js';
import { frameworkMethods } from './framework.js';
import { Logger } from './log.js';
import type { TargetPlugin } from './plugin.js';
import { REACTOR_MODULES, SUBSYSTEMS } from './registry.js';
import type { AppSubsystem } from './subsystem.js';
import { VERSION } from './version.js';

export interface TargetOptions {
  /** Core mask (`0x3`, `[0,1]`) or list. */
  mask?: string;
  cores?: number[];
  /** RPC Unix socket path. */
  rpcSocket: string;
  /** Permission bits of the RPC socket file (default 0o600: this user only). */
  rpcSocketMode?: number;
  /** Also listen on loopback TCP. */
  rpcTcp?: { host: string; port: number };
  /** A parsed SPDK config to load. */
  config?: SpdkConfig;
  /** Hold runtime methods until framework_start_init. */
  waitForRpc?: boolean;
  log?: Logger;
  /** Reactor loop options (tests use short idle thresholds). */
  loop?: Parameters<typeof startApp>[0]['loop'];
  /** Directory of vhost controllers' sockets (SPDK's `-S`); default: the RPC socket's directory. */
  vhostDir?: string;
  /** Stop on SIGINT/SIGTERM (default true). */
  signals?: boolean;
  /**
   * Run the I/OAT device model with this many channels (there is no I/OAT hardware here): with
   * ioat_scan_accel_module the accel framework finds them as it would find real channels.
   */
  ioatModel?: { channels: number; core?: number };
  /**
   * Plugins (see plugin.ts; `storkit tgt --plugin FILE`): their reactor modules are imported by every
   * reactor after the app's own, their bdev methods served like the built-in ones.
   */
  plugins?: readonly TargetPlugin[];
}

export class Target {
  readonly server: RpcServer;
  readonly log: Logger;
  readonly subsystems: AppSubsystem[];
  readonly #opts: TargetOptions;
  readonly #ctl = new AppControl();
  #ioatModel: IoatModel | null = null;
  #init: Promise<void> | null = null;
  #initWaiters: (() => void)[] = [];
  #stopping: Promise<AppResult> | null = null;
  #resolveDone!: (r: AppResult) => void;
  /** Resolves once the target has stopped (RPC, signal, or failure). */
  readonly done: Promise<AppResult>;

  constructor(opts: TargetOptions) {
    this.#opts = opts;
    this.log = opts.log ?? new Logger();
    this.server = new RpcServer({
      log: (l) => this.log.debug('rpc', l),
      socketMode: opts.rpcSocketMode,
      onInert: (method, notes) => this.#inert(method, notes),
    });
    const vhostDir = opts.vhostDir ?? dirname(opts.rpcSocket);
    const bdevMethods = (opts.plugins ?? []).flatMap((p) => p.bdevMethods ?? []);
    this.subsystems = SUBSYSTEMS.map((f) =>
      f(this.#ctl, {
        vhostDir,
        ioatDevices: () => this.#ioatModel?.devices ?? [],
        bdevMethods,
        log: this.log,
      }),
    );
    this.done = new Promise((r) => {
      this.#resolveDone = r;
    });
    registerBuiltins(this.server, VERSION);
    for (const m of frameworkMethods({
      startInit: () => this.startInit(),
      waitInit: () =>
        this.#ctl.app ? Promise.resolve() : new Promise<void>((r) => this.#initWaiters.push(r)),
      snapshots: () => (this.#ctl.app ? this.#ctl.app.snapshot() : Promise.resolve([])),
      subsystems: () => this.subsystems,
      kill: (sig) => {
        this.log.notice('app', `spdk_kill_instance ${sig}: shutting down`);
        void this.stop(0);
      },
      tickRate: this.#ctl.tickRate,
    }))
      this.server.register(m);
    for (const s of this.subsystems) for (const m of s.methods) this.server.register(this.#logged(s.name, m));
  }

  /**
   * A subsystem's method that logs under the subsystem's component (`-L bdev`, `-L nvmf`, ...): one
   * debug line per call, and a warning when a call that changes state fails. Control plane only.
   */
  #logged(component: string, m: AnyMethodDef): AnyMethodDef {
    const log = this.log;
    const reads = /_get_|^.*_get$/.test(m.name);
    return {
      ...m,
      async handler(p, ctx) {
        log.debug(component, `${m.name} ${JSON.stringify(p)}`);
        try {
          return await m.handler(p, ctx);
        } catch (e) {
          if (!reads) log.warn(component, `${m.name} failed: ${e instanceof Error ? e.message : String(e)}`);
          throw e;
        }
      },
    };
  }

  /** Params already warned about: each SPDK option storkit does not act on is named once. */
  readonly #inertWarned = new Set<string>();

  /** A value other than SPDK's default for a parameter storkit accepts but does not act on. */
  #inert(method: string, notes: InertNote[]): void {
    for (const n of notes) {
      const key = `${method}.${n.path}`;
      if (this.#inertWarned.has(key)) continue;
      this.#inertWarned.add(key);
      this.log.warn(
        'app',
        `${method}: ${n.path} ${JSON.stringify(n.value)} is accepted but storkit does not act on it (SPDK's default: ${JSON.stringify(n.spdkDefault)})`,
      );
    }
  }

  get app(): App | null {
    return this.#ctl.app;
  }

  /**
   * Call a method in-process, by SPDK's name and params, validated by the same schemas as over the
   * socket: what a service embedding the target uses instead of a JSON-RPC client. Resolves with
   * the method's result; rejects with its RpcError (a JSON-RPC `code` and the message).
   */
  async call<R = unknown>(method: string, params?: object): Promise<R> {
    const r = await this.server.call(method, params);
    if (r.error) throw r.error;
    return r.result as R;
  }

  /** Listen for RPC, load the config's startup part, and (unless waitForRpc) initialize. */
  async start(): Promise<void> {
    this.server.setState('startup');
    await this.server.listenUnix(this.#opts.rpcSocket);
    if (this.#opts.rpcTcp) await this.server.listenTcp(this.#opts.rpcTcp.host, this.#opts.rpcTcp.port);
    if (this.#opts.signals ?? true) {
      const onSig = (sig: string) => {
        this.log.notice('app', `${sig}: shutting down`);
        void this.stop(0);
      };
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      void this.done.then(() => {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      });
    }
    try {
      if (this.#opts.ioatModel) {
        this.#ioatModel = await IoatModel.start(this.#opts.ioatModel);
        this.log.notice(
          'app',
          `I/OAT device model: ${this.#ioatModel.devices.map((d) => d.address).join(' ')}`,
        );
      }
      if (this.#opts.config)
        await applyConfig(this.#opts.config, this.server, this.subsystems, 'startup', this.log);
      if (!this.#opts.waitForRpc) await this.startInit();
      else this.log.notice('app', 'waiting for framework_start_init (--wait-for-rpc)');
    } catch (e) {
      await this.stop(1, e instanceof Error ? e.message : String(e));
      throw e;
    }
  }

  /** framework_start_init: start reactors, subsystems, then the config's runtime part. */
  startInit(): Promise<void> {
    this.#init ??= this.#doInit();
    return this.#init;
  }

  async #doInit(): Promise<void> {
    const app = await startApp({
      mask: this.#opts.mask,
      cores: this.#opts.cores,
      modules: [...REACTOR_MODULES, ...(this.#opts.plugins ?? []).flatMap((p) => p.reactorModules ?? [])],
      signals: false,
      // The targets' work arrives on sockets: give libuv a turn as soon as a reactor runs dry.
      loop: { yieldIdleUs: 0, ...this.#opts.loop },
    });
    this.#ctl.app = app;
    void app.done.then((r) => {
      if (this.#stopping === null) void this.stop(r.code || 1, r.error ?? 'reactors stopped');
    });
    for (const s of this.subsystems) await s.start?.();
    this.server.setState('runtime');
    this.log.notice('app', `reactors started on cores ${app.cores.join(',')}`);
    if (this.#opts.config) {
      await applyConfig(this.#opts.config, this.server, this.subsystems, 'runtime', this.log);
      // What examine builds on the config's bdevs (lvstores, virtual bdevs held for their base)
      // exists before the target says it is up, whether or not the config ends with
      // bdev_wait_for_examine as save_config writes it.
      const r = await this.server.call('bdev_wait_for_examine', {});
      if (r.error) throw new Error(`bdev_wait_for_examine: ${r.error.message}`);
    }
    for (const w of this.#initWaiters.splice(0)) w();
  }

  /** Orderly shutdown: stop answering RPC, stop reactors (subsystems fini, threads drain), remove the socket. */
  stop(code = 0, error?: string): Promise<AppResult> {
    this.#stopping ??= (async () => {
      if (error) this.log.error('app', error);
      await this.server.close();
      const r: AppResult = this.#ctl.app ? await this.#ctl.app.stop(code, error) : { code, leaked: [] };
      await this.#ioatModel?.stop();
      if (error && r.error === undefined) r.error = error;
      if (code && !r.code) r.code = code;
      this.#resolveDone(r);
      return r;
    })();
    return this.#stopping;
  }
}
