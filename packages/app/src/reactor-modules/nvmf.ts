// Imported by every reactor worker of the target app: one NvmfTarget per reactor (its poll group),
// built by the same control operations in each, so every reactor holds the same subsystems,
// namespaces, hosts and listeners. Each reactor listens on every address through its own
// SO_REUSEPORT socket; a connection's qpair lives on the reactor that accepted it, and its
// namespaces are served from that reactor's channel of the bdev. Controllers whose I/O queues are
// spread over reactors are coordinated through a shared controller table plus one named handler
// (see packages/nvmf/README.md, "Poll groups").
import { type AccelChannel, accelGetIoChannel, accelStarted } from '@storkit/accel';
import { BdevBlockBackend, type BdevDesc, BdevEvent, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import type { BlockBackend } from '@storkit/block';
import {
  bdevNvmeAttachController,
  bdevNvmeAttachedParams,
  bdevNvmeAttachReplica,
  bdevNvmeDetachController,
  bdevNvmeGetControllers,
} from '@storkit/nvme/bdev';
import { NvmfTarget, type TcpQpair } from '@storkit/nvmf';
import {
  type Control,
  codec,
  defineControl,
  defineHandler,
  defineSubsystem,
  getThread,
  type IoChannel,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  reactorCount,
  reactorIndex,
  reactorThread,
  registerPoller,
  SockHost,
  send,
  type Thread,
  wakeReactor,
} from '@storkit/reactor';

import { bdevNvmeAttach, bdevNvmeDetach, bdevNvmeGet, bdevNvmeReplica, nvmfOps } from '../controls/nvmf.js';
import { reactorIobuf } from './iobuf.js';

/** What a failed call hands `done`: an Error (its `code`, an errno name, crosses to the RPC layer). */
function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * How reactors host NVMe/TCP sockets: the reactor's native socket group (default), or node:net
 * (STORKIT_NVMF_SOCK=node) as the fallback and for A/B measurements.
 */
const SOCK: 'native' | 'node' = process.env.STORKIT_NVMF_SOCK === 'node' ? 'node' : 'native';

/** This reactor's target and what it holds open; made on the first control operation. */
class ReactorNvmf {
  readonly thread: Thread;
  readonly target: NvmfTarget;
  readonly #opened = new Set<BdevBlockBackend>();
  /** I/O that waited for a bdev_io on backends since released (pending_bdev_io is all time). */
  #heldRetired = 0;
  /** Qpairs with PDUs to send, flushed by the poll group poller each iteration (no allocation). */
  readonly #toFlush: TcpQpair[] = [];
  #nToFlush = 0;
  readonly #poller: Poller;
  readonly #sockHost: SockHost | null;
  /** This thread's accel channel: the qpairs' data digests go through it. */
  readonly #accel: IoChannel<AccelChannel> | null;

  constructor(thread: Thread) {
    this.thread = thread;
    const index = reactorIndex();
    this.#accel = accelStarted() ? accelGetIoChannel() : null;
    // Before the flush poller: an iteration reads the sockets, then sends what that produced.
    this.#sockHost = SOCK === 'native' ? new SockHost({ name: 'nvmf_tgt_sock_group' }) : null;
    this.#poller = registerPoller(this.#flushAll, 0, 'nvmf_tgt_poll_group');
    this.target = new NvmfTarget({
      accel: this.#accel?.ctx,
      scheduleFlush: (qp) => {
        this.#toFlush[this.#nToFlush++] = qp;
      },
      resolveBdev: (name) => this.#open(name),
      iobuf: reactorIobuf(),
      pollGroups: reactorCount(),
      pendingBdevIo: () => {
        let n = this.#heldRetired;
        for (const b of this.#opened) n += b.stats.heldTotal;
        return n;
      },
      listen: {
        reusePort: true,
        exclusive: index === 0,
        sockHost: this.#sockHost ?? undefined,
        run: (fn, arg) => {
          this.thread._runNow(fn, arg);
          wakeReactor();
        },
      },
      cluster: {
        index,
        pollGroup: `nvmf_tgt_poll_group_${String(index).padStart(3, '0')}`,
        controllerDown: (s, cntlid, gen) => this.#inThread(() => this.#announceDown(s.id, cntlid, gen)),
        controllerError: (s, cntlid, gen, entry) => {
          const owner = s.table?.lookup(cntlid)?.owner;
          if (owner !== undefined)
            send(reactorThread(owner), ctrlrError, { sub: s.id, cntlid, gen, entry: Array.from(entry) });
        },
      },
    });
  }

  /** Send every qpair's queued PDUs (SPDK's sock group flush in the poll group poller). */
  readonly #flushAll = (): number => {
    const n = this.#nToFlush;
    if (n === 0) return POLLER_IDLE;
    // A flush may queue more (a close after flush): take this batch, keep what arrives meanwhile.
    for (let i = 0; i < n; i++) {
      const qp = this.#toFlush[i];
      this.#toFlush[i] = undefined as unknown as TcpQpair;
      qp.flushNow();
    }
    const more = this.#nToFlush - n;
    for (let i = 0; i < more; i++) this.#toFlush[i] = this.#toFlush[n + i];
    this.#nToFlush = more;
    return POLLER_BUSY;
  };

  /** Run `fn` as this reactor's thread (timers such as keep alive fire outside any thread). */
  #inThread(fn: () => void): void {
    if (getThread() === this.thread) fn();
    else this.thread.sendMsg(fn);
  }

  #announceDown(sub: number, cntlid: number, gen: number): void {
    const me = reactorIndex();
    for (let i = 0; i < reactorCount(); i++)
      if (i !== me) send(reactorThread(i), ctrlrDown, { sub, cntlid, gen });
  }

  /** A namespace backend on this thread's channel of the bdev (held until no namespace uses it). */
  #open(name: string): BdevBlockBackend | undefined {
    let desc: BdevDesc;
    try {
      desc = bdevOpenExt(name, true, (type) => {
        if (type === BdevEvent.REMOVE) this.#bdevRemoved(backend);
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENODEV') return undefined;
      throw e;
    }
    const backend = new BdevBlockBackend(desc, bdevGetIoChannel(desc));
    this.#opened.add(backend);
    return backend;
  }

  /** Hot remove of a bdev: its namespaces go away (hosts get the namespace-change notice). */
  #bdevRemoved(b: BdevBlockBackend): void {
    for (const s of this.target.subsystems.values())
      for (const ns of [...s.namespaces.values()])
        if (ns.backend === b) this.target.nvmf_subsystem_remove_ns({ nqn: s.nqn, nsid: ns.nsid });
    this.sweep();
  }

  /**
   * Release backends no namespace uses any more (after add_ns failed, remove_ns, delete), as this
   * reactor's thread (channels are put on their own thread; callers may be past an await).
   */
  sweep(): void {
    this.#inThread(this.#sweepNow);
  }

  readonly #sweepNow = (): void => {
    const used = new Set<BlockBackend>();
    for (const s of this.target.subsystems.values())
      for (const ns of s.namespaces.values()) used.add(ns.backend);
    for (const b of this.#opened) {
      if (used.has(b)) continue;
      this.#opened.delete(b);
      this.#heldRetired += b.stats.heldTotal;
      b.close();
    }
  };

  /** Shutdown: subsystems (their controllers and listeners), then the rest, then the bdevs held. */
  async close(): Promise<void> {
    try {
      for (const s of [...this.target.subsystems.values()])
        if (s !== this.target.discovery) await this.target.nvmf_delete_subsystem({ nqn: s.nqn });
      await this.target.close();
    } finally {
      this.sweep();
      this.#inThread(() => {
        this.#poller.unregister();
        this.#sockHost?.close();
        this.#accel?.put();
      });
    }
  }
}

let local: ReactorNvmf | null = null;

function here(): ReactorNvmf {
  if (local === null) {
    const t = getThread();
    if (t === null) throw Object.assign(new Error('nvmf control outside a reactor thread'), { code: 'EIO' });
    local = new ReactorNvmf(t);
  }
  return local;
}

// Shutdown: connections, listeners and subsystems go before the bdev layer's fini (reverse order of
// definition; @storkit/bdev's subsystem is defined by the import above), releasing every channel.
defineSubsystem({
  name: 'nvmf',
  fini(done) {
    const n = local;
    local = null;
    // fini runs outside any thread: shut down as the reactor's thread, then detach nvme controllers
    // (their bdevs may back namespaces, so after the target).
    const thread = n?.thread ?? nvmeThread;
    if (thread === null) return done();
    thread.sendMsg(() => {
      // The target's close resolves outside any thread: detach as the thread again.
      const after = () => thread.sendMsg(() => detachAll(done));
      if (n) n.close().then(after, after);
      else detachAll(done);
    });
  },
});

// ---- bdev_nvme: the nvme bdev module's control operations (the main side is bdev-nvme-subsystem) ----

/** The thread the nvme controllers were attached on (for shutdown). */
let nvmeThread: Thread | null = null;

function detachAll(done: () => void): void {
  const names = bdevNvmeAttachedParams().map((p) => p.name);
  let left = names.length;
  if (left === 0) {
    done();
    return;
  }
  for (const name of names)
    bdevNvmeDetachController({ name }, () => {
      if (--left === 0) done();
    });
}

defineControl(bdevNvmeAttach, (p, done) => {
  nvmeThread = getThread();
  bdevNvmeAttachController(p).then(
    (r) => done(null, r),
    (e) => done(asError(e)),
  );
});

defineControl(bdevNvmeReplica, (replay, done) => {
  nvmeThread = getThread();
  done(null, bdevNvmeAttachReplica(replay));
});

defineControl(bdevNvmeDetach, (p, done) => {
  bdevNvmeDetachController(p, (e) => done(e, true));
});

defineControl(bdevNvmeGet, (p, done) => done(null, bdevNvmeGetControllers(p)));

const DownMsg = codec.struct('nvmf_ctrlr_down', { sub: 'u32', cntlid: 'u32', gen: 'i32' });
/** The owner of a controller says it is gone or reset: close the I/O queues carried here for it. */
const ctrlrDown = defineHandler('nvmf.ctrlr_down', DownMsg, (m) => {
  local?.target.remoteControllerDown(m.sub, m.cntlid, m.gen);
});

/** A failed command of an I/O queue carried elsewhere: its error log entry, for the owner's log. */
const ctrlrError = defineHandler(
  'nvmf.ctrlr_error',
  codec.json<{ sub: number; cntlid: number; gen: number; entry: number[] }>(),
  (m) => local?.target.remoteControllerError(m.sub, m.cntlid, m.gen, Uint8Array.from(m.entry)),
);

/** One call of the target's RPC surface on this reactor; its errors' codes are errno names, answered as -errno. */
function serve<P, R>(op: Control<P, R>, fn: (n: ReactorNvmf, p: P) => R | Promise<R>): void {
  defineControl(op, (p, done) => {
    Promise.resolve(fn(here(), p)).then(
      (v) => done(null, v),
      (e) => done(asError(e)),
    );
  });
}

/** A call that answers nothing but success (SPDK's `true`). */
function act<P>(op: Control<P, true>, fn: (n: ReactorNvmf, p: P) => void | Promise<void>): void {
  serve(op, async (n, p) => {
    await fn(n, p);
    return true as const;
  });
}

const o = nvmfOps;
act(o.nvmf_create_transport, (n, p) => n.target.nvmf_create_transport(p));
serve(o.nvmf_get_transports, (n) => n.target.nvmf_get_transports());
act(o.nvmf_create_subsystem, (n, p) => n.target.nvmf_create_subsystem(p.params, p.shared));
act(o.nvmf_delete_subsystem, async (n, p) => {
  await n.target.nvmf_delete_subsystem(p);
  n.sweep();
});
serve(o.nvmf_subsystem_add_ns, (n, p) => {
  try {
    return n.target.nvmf_subsystem_add_ns(p);
  } finally {
    n.sweep(); // a refused add leaves its freshly opened backend unused
  }
});
act(o.nvmf_subsystem_remove_ns, (n, p) => {
  n.target.nvmf_subsystem_remove_ns(p);
  n.sweep();
});
act(o.nvmf_subsystem_add_host, (n, p) => n.target.nvmf_subsystem_add_host(p));
act(o.nvmf_subsystem_remove_host, (n, p) => n.target.nvmf_subsystem_remove_host(p));
act(o.nvmf_subsystem_allow_any_host, (n, p) => n.target.nvmf_subsystem_allow_any_host(p));
act(o.nvmf_subsystem_add_listener, (n, p) => n.target.nvmf_subsystem_add_listener(p));
act(o.nvmf_subsystem_remove_listener, (n, p) => n.target.nvmf_subsystem_remove_listener(p));
serve(o.nvmf_subsystem_get_listeners, (n, p) => n.target.nvmf_subsystem_get_listeners(p));
act(o.nvmf_discovery_add_referral, (n, p) => n.target.nvmf_discovery_add_referral(p));
act(o.nvmf_discovery_remove_referral, (n, p) => n.target.nvmf_discovery_remove_referral(p));
serve(o.nvmf_get_subsystems, (n) => n.target.nvmf_get_subsystems());
serve(o.nvmf_subsystem_get_controllers, (n, p) => n.target.nvmf_subsystem_get_controllers(p, true));
serve(o.nvmf_subsystem_get_qpairs, (n, p) => n.target.nvmf_subsystem_get_qpairs(p));
serve(o.nvmf_get_stats, (n) => n.target.nvmf_get_stats());
