// Imported by every reactor worker of the target app: the control operations behind the iscsi_*
// RPCs. Every reactor holds its own IscsiTarget with the same groups and target nodes; each listens
// on every portal through SO_REUSEPORT, so the kernel spreads connections over the reactors, and a
// connection's PDUs and I/O run on the reactor that accepted it, against that reactor's bdev
// channel (BdevBlockBackend).
//
// LUN state that SCSI needs in one place (reservations, unit attentions, a session's task order)
// lives with the target node's owner reactor: a normal-session login for a node owned elsewhere is
// answered with a login redirect (Target Moved Temporarily) to the owner's private port on the
// same address, so every session of a node, and every connection of a session, runs on one
// reactor. Discovery sessions are served wherever they land. Sessions (normal and discovery) are
// counted against max_sessions in one Int32 shared by every reactor (SessionCount).
import { BdevEvent, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import {
  type ConnectionInfo,
  type DiscoveryAuthParams,
  IscsiError,
  IscsiServer,
  IscsiTarget,
  SessionCount,
  type TargetNode,
  type TargetNodeParams,
} from '@storkit/iscsi';
import {
  defineControl,
  defineSubsystem,
  getThread,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  reactorCore,
  reactorIndex,
  SockHost,
  type Thread,
  wakeReactor,
} from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';

import { BdevBlockBackend } from '../bdev-block-backend.js';

type Done = (err: Error | null, value?: unknown) => void;
type P = Record<string, unknown>;

interface State {
  target: IscsiTarget;
  /** Flushes corked sockets once per reactor iteration, after the bdev completion pollers. */
  flusher: Poller;
  server: IscsiServer;
  /** The native socket group serving the portals (null: node:net, STORKIT_ISCSI_SOCK=node). */
  sockHost: SockHost | null;
  thread: Thread;
  backends: Map<string, BdevBlockBackend>;
  /** Target node name → index of the reactor owning its LUN state. */
  owners: Map<string, number>;
  /** Portal group tag → private ports per reactor (in portal order). */
  peers: Map<number, number[][]>;
}

let state: State | null = null;
/** Logins this reactor redirected to a node's owner. */
let redirected = 0;
/** This reactor's first thread: current while socket callbacks run (also during shutdown). */
let hostThread: Thread | null = null;

/** IscsiError codes (`EEXIST_GROUP`) → errno names the RPC layer maps (`EEXIST`). */
function errno<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof IscsiError) throw Object.assign(new Error(e.message), { code: e.code.split('_')[0] });
    throw e;
  }
}

function need(): State {
  if (state === null) throw Object.assign(new Error('iscsi is not initialized'), { code: 'EBUSY' });
  return state;
}

/** One backend per bdev on this reactor: a writable descriptor and this thread's channel. */
function lookup(name: string): BdevBlockBackend | undefined {
  const s = need();
  let b = s.backends.get(name);
  if (b) return b;
  let desc: ReturnType<typeof bdevOpenExt>;
  try {
    desc = bdevOpenExt(name, true, (type) => {
      if (type !== BdevEvent.REMOVE) return;
      // Hot remove: the LUNs it backs go away on this reactor's copy of every node (SPDK's
      // spdk_scsi_lun hot remove); I/O already running finishes through the closing backend.
      s.target.removeBdevLuns(name);
      s.backends.get(name)?.close();
      s.backends.delete(name);
    });
  } catch (e) {
    if ((e as { code?: string }).code === 'ENODEV') return undefined;
    throw e;
  }
  b = new BdevBlockBackend(desc, bdevGetIoChannel(desc));
  s.backends.set(name, b);
  return b;
}

/**
 * How reactors host iSCSI sockets: the reactor's native socket group (default), or node:net
 * (STORKIT_ISCSI_SOCK=node) as the fallback and for A/B measurements.
 */
const SOCK: 'native' | 'node' = process.env.STORKIT_ISCSI_SOCK === 'node' ? 'node' : 'native';

/** node:net socket callbacks run with this reactor's first thread current, then wake the reactor. */
function run<A>(fn: (arg: A) => void, arg: A): void {
  const prev = setCurrentThread(hostThread);
  try {
    fn(arg);
  } finally {
    setCurrentThread(prev);
  }
  wakeReactor();
}

function redirect(node: TargetNode, info: ConnectionInfo): string | null {
  const s = need();
  const owner = s.owners.get(node.name) ?? reactorIndex();
  if (owner === reactorIndex()) return null;
  const tag = info.portalGroupTag;
  const ports = s.peers.get(tag)?.[owner];
  const pg = s.target.portalGroups.get(tag);
  if (!ports || !pg) return null;
  // The portal the initiator reached: same port, and the same host unless it is a wildcard.
  const i = pg.portals.findIndex((p) => Number(p.port) === info.localPort);
  if (i < 0 || ports[i] === undefined) return null;
  redirected++;
  const host = info.localAddress.includes(':') ? `[${info.localAddress}]` : info.localAddress;
  return `${host}:${ports[i]},${tag}`;
}

/** Socket flushes queued during this iteration (an array reused: no allocation per flush). */
const flushes: (() => void)[] = [];
let flushCount = 0;

function scheduleFlush(f: () => void): void {
  flushes[flushCount++] = f;
  if (flushCount === 1 && getThread() === null) wakeReactor();
}

function flushPoller(): number {
  const n = flushCount;
  if (n === 0) return POLLER_IDLE;
  for (let i = 0; i < n; i++) {
    const f = flushes[i];
    flushes[i] = noop;
    f();
  }
  // Flushes queued while flushing (none expected) stay for the next iteration.
  flushes.copyWithin(0, n, flushCount);
  flushCount -= n;
  return POLLER_BUSY;
}

const noop = (): void => {};

defineControl('iscsi.init', (arg, done: Done) => {
  if (state !== null) return done(null, true);
  const thread = getThread();
  if (thread === null) throw Object.assign(new Error('iscsi.init needs a thread'), { code: 'EINVAL' });
  // The session count is shared by every reactor (made on the main thread): max_sessions holds
  // for the whole target, not per reactor.
  const { options, sessions } = (arg ?? {}) as { options?: P; sessions?: SharedArrayBuffer };
  const target = errno(
    () => new IscsiTarget(lookup, options ?? {}, sessions ? new SessionCount(sessions) : undefined),
  );
  // Before the flush poller: an iteration reads the sockets, then sends what that produced.
  const sockHost = SOCK === 'native' ? new SockHost({ name: 'iscsi_sock_group' }) : null;
  const server = new IscsiServer(target, {
    reusePort: true,
    exclusive: reactorIndex() === 0,
    run,
    flush: scheduleFlush,
    sockHost: sockHost ?? undefined,
  });
  target.redirect = redirect;
  const flusher = thread.registerPoller(flushPoller, 0, 'iscsi_flush');
  hostThread = thread;
  state = {
    target,
    flusher,
    server,
    sockHost,
    thread,
    backends: new Map(),
    owners: new Map(),
    peers: new Map(),
  };
  done(null, true);
});

// At shutdown: close listeners and connections, then release this reactor's bdev channels.
defineSubsystem({
  name: 'iscsi',
  fini(done) {
    const s = state;
    if (s === null) return done();
    s.flusher.unregister();
    flushPoller();
    void s.server.close().then(() => {
      state = null;
      // Channels are put on the thread that got them.
      const prev = setCurrentThread(s.thread);
      try {
        s.sockHost?.close(); // connections still closing end here (their sessions are told)
        for (const b of s.backends.values()) b.close();
      } finally {
        setCurrentThread(prev);
      }
      done();
    });
  },
});

/** Config methods applied the same way on every reactor (synchronous, all-or-nothing per reactor). */
const APPLY: Record<string, (t: IscsiTarget, p: P) => unknown> = {
  iscsi_set_discovery_auth: (t, p) => t.setDiscoveryAuth(p as DiscoveryAuthParams),
  iscsi_create_auth_group: (t, p) =>
    t.createAuthGroup({ tag: p.tag as number, secrets: (p.secrets ?? []) as never }),
  iscsi_delete_auth_group: (t, p) => t.deleteAuthGroup(p.tag as number),
  iscsi_auth_group_add_secret: (t, p) => {
    const { tag, ...secret } = p;
    t.authGroupAddSecret(tag as number, secret as never);
  },
  iscsi_auth_group_remove_secret: (t, p) => t.authGroupRemoveSecret(p.tag as number, p.user as string),
  iscsi_create_initiator_group: (t, p) => t.createInitiatorGroup(p as never),
  iscsi_delete_initiator_group: (t, p) => t.deleteInitiatorGroup(p.tag as number),
  iscsi_target_node_add_lun: (t, p) =>
    t.targetNodeAddLun(p.name as string, { bdev_name: p.bdev_name as string, lun_id: p.lun_id as number }),
  iscsi_target_node_set_auth: (t, p) => {
    const { name, ...auth } = p;
    t.targetNodeSetAuth(name as string, auth as DiscoveryAuthParams);
  },
};

defineControl('iscsi.apply', (arg, done: Done) => {
  const { method, params } = arg as { method: string; params: P };
  const fn = APPLY[method];
  if (!fn) throw Object.assign(new Error(`unknown iscsi method ${method}`), { code: 'EINVAL' });
  errno(() => fn(need().target, params));
  done(null, true);
});

/** Creates the group and listens on its portals (SO_REUSEPORT) plus this reactor's private ports. */
defineControl('iscsi.create_portal_group', (arg, done: Done) => {
  const p = arg as { tag: number; portals: { host: string; port: string }[]; private?: boolean };
  const s = need();
  errno(() =>
    s.target.createPortalGroup({ tag: p.tag, portals: p.portals.map((x) => ({ ...x })), private: p.private }),
  );
  const undo = (e: Error) =>
    void s.server.unlisten(p.tag).then(() => {
      s.target.portalGroups.delete(p.tag);
      done(e);
    });
  s.server
    .listen(p.tag)
    .then(async (bound) => {
      const priv = await s.server.listenPrivate(p.tag);
      done(null, { ports: bound.map((b) => String(b.port)), private_ports: priv });
    })
    .catch(undo);
});

defineControl('iscsi.delete_portal_group', (arg, done: Done) => {
  const { tag } = arg as { tag: number };
  const s = need();
  errno(() => s.target.deletePortalGroup(tag));
  s.peers.delete(tag);
  void s.server.unlisten(tag).then(() => done(null, true));
});

defineControl('iscsi.set_peers', (arg, done: Done) => {
  const { tag, ports } = arg as { tag: number; ports: number[][] };
  need().peers.set(tag, ports);
  done(null, true);
});

defineControl('iscsi.create_target_node', (arg, done: Done) => {
  const { params, owner } = arg as { params: TargetNodeParams; owner: number };
  const s = need();
  const node = errno(() => s.target.createTargetNode(params));
  s.owners.set(node.name, owner);
  done(null, node.name);
});

defineControl('iscsi.delete_target_node', (arg, done: Done) => {
  const { name } = arg as { name: string };
  const s = need();
  const full = s.target.nodes.get(name)?.name ?? name;
  errno(() => s.target.deleteTargetNode(name));
  for (const k of s.owners.keys()) if (k === full || k.endsWith(`:${name}`)) s.owners.delete(k);
  done(null, true);
});

/** Read-only views of this reactor's state. */
const GET: Record<string, (s: State) => unknown> = {
  options: (s) => s.target.getOptions(),
  discovery_auth: (s) => ({ ...s.target.discoveryAuth }),
  auth_groups: (s) => s.target.getAuthGroups(),
  initiator_groups: (s) => s.target.getInitiatorGroups(),
  portal_groups: (s) => s.target.getPortalGroups(),
  target_nodes: (s) => s.target.getTargetNodes(),
  connections: (s) =>
    s.target.getConnections().map((c) => ({ ...c, lcore_id: reactorCore(), reactor: reactorIndex() })),
  stats: (s) => s.target.getStats(),
  /** storkit: where connections landed (for tests and diagnostics). */
  placement: (s) => ({ accepted: s.server.accepted, redirected }),
  /** storkit: this reactor's sessions, and the target-wide count max_sessions is checked against. */
  sessions: (s) => ({ local: s.target.sessions.size, target: s.target.sessionCount.value }),
  /** storkit: every reactor's private ports (login redirects), by portal group tag. */
  peers: (s) => Object.fromEntries(s.peers),
};

defineControl('iscsi.get', (arg, done: Done) => {
  const { what } = arg as { what: string };
  const fn = GET[what];
  if (!fn) throw Object.assign(new Error(`unknown iscsi view ${what}`), { code: 'EINVAL' });
  done(null, fn(need()));
});
