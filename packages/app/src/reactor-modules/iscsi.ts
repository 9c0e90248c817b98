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
// reactor. On the native socket host a login is not redirected but moved: the connection's socket
// and its first login request go to the owner reactor, which answers it (SPDK moves a connection
// to its target's poll group the same way). A redirect names the address the target saw, which an
// initiator behind NAT (a VM on QEMU's user network, a container's published port) cannot reach;
// it stays only for node:net sockets and for logins whose first request came in several PDUs. Discovery sessions are served wherever they land. Sessions (normal and discovery) are
// counted against max_sessions in one Int32 shared by every reactor (SessionCount).
import { type AccelChannel, accelGetIoChannel, accelStarted } from '@storkit/accel';
import { BdevBlockBackend, BdevEvent, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import {
  type Connection,
  type ConnectionInfo,
  IscsiServer,
  IscsiTarget,
  type MovedConnection,
  SessionCount,
  type TargetNode,
} from '@storkit/iscsi';
import { closeFd } from '@storkit/native';
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
  reactorCore,
  reactorIndex,
  reactorThread,
  SockHost,
  send,
  type Thread,
  wakeReactor,
} from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';

import {
  iscsiApply,
  iscsiCreatePortalGroup,
  iscsiCreateTargetNode,
  iscsiDeletePortalGroup,
  iscsiDeleteTargetNode,
  iscsiGet,
  iscsiInit,
  iscsiSetPeers,
} from '../controls/iscsi.js';
import { reactorIobuf } from './iobuf.js';

interface State {
  target: IscsiTarget;
  /** Flushes corked sockets once per reactor iteration, after the bdev completion pollers. */
  flusher: Poller;
  server: IscsiServer;
  /** The native socket group serving the portals (null: node:net, STORKIT_ISCSI_SOCK=node). */
  sockHost: SockHost | null;
  thread: Thread;
  /** This thread's accel channel: the connections' data digests go through it. */
  accel: IoChannel<AccelChannel> | null;
  backends: Map<string, BdevBlockBackend>;
  /** Target node name → index of the reactor owning its LUN state. */
  owners: Map<string, number>;
  /** Portal group tag → private ports per reactor (in portal order). */
  peers: Map<number, number[][]>;
}

let state: State | null = null;
/** Logins this reactor redirected to a node's owner. */
let redirected = 0;
/** Connections moved here from another reactor that could not be served (closed). */
let adoptFailed = 0;
/** This reactor's first thread: current while socket callbacks run (also during shutdown). */
let hostThread: Thread | null = null;

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

/** A connection moving to its node's owner: its fd and the first login request, base64. */
interface MoveMsg {
  fd: number;
  tag: number;
  bytes: string;
}

const adoptH = defineHandler<MoveMsg>('iscsi.adopt', codec.json<MoveMsg>(), (m) => {
  const s = state;
  const moved: MovedConnection = { fd: m.fd, portalGroupTag: m.tag, bytes: Buffer.from(m.bytes, 'base64') };
  if (s === null || s.sockHost === null) {
    adoptFailed++;
    closeFd(m.fd); // shutting down here: the initiator sees the connection close and retries
    return;
  }
  try {
    s.server.adopt(moved);
  } catch (e) {
    adoptFailed++;
    console.error(
      `iscsi: reactor ${reactorIndex()} could not take a moved connection: ${(e as Error).message}`,
    );
  }
});

function handoff(node: TargetNode, conn: Connection): boolean {
  const s = need();
  const owner = s.owners.get(node.name) ?? reactorIndex();
  if (owner === reactorIndex() || s.sockHost === null) return false;
  const m = s.server.detach(conn);
  if (m === null) return false;
  try {
    send(reactorThread(owner), adoptH, {
      fd: m.fd,
      tag: m.portalGroupTag,
      bytes: Buffer.from(m.bytes).toString('base64'),
    });
  } catch (e) {
    // The owner is gone (shutdown): nobody serves this login; close it.
    closeFd(m.fd);
    console.error(`iscsi: moving a login to reactor ${owner} failed: ${(e as Error).message}`);
  }
  return true;
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

defineControl(iscsiInit, ({ options, sessions }, done) => {
  if (state !== null) return done(null, true);
  const thread = getThread();
  if (thread === null) throw Object.assign(new Error('iscsi.init needs a thread'), { code: 'EINVAL' });
  // The session count is shared by every reactor (made on the main thread): max_sessions holds
  // for the whole target, not per reactor.
  const target = new IscsiTarget(lookup, options, new SessionCount(sessions), reactorIobuf());
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
  target.handoff = handoff;
  const accel = accelStarted() ? accelGetIoChannel() : null;
  target.crc32c = accel?.ctx.crc32cRange ?? null;
  const flusher = thread.registerPoller(flushPoller, 0, 'iscsi_flush');
  hostThread = thread;
  state = {
    target,
    flusher,
    server,
    sockHost,
    thread,
    accel,
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
        s.accel?.put();
      } finally {
        setCurrentThread(prev);
      }
      done();
    });
  },
});

/** A config method applied the same way on every reactor (synchronous, all-or-nothing per reactor). */
function applies<P>(op: Control<P, true>, fn: (t: IscsiTarget, p: P) => void): void {
  defineControl(op, (p, done) => {
    fn(need().target, p);
    done(null, true);
  });
}

const a = iscsiApply;
applies(a.iscsi_set_discovery_auth, (t, p) => t.setDiscoveryAuth(p));
applies(a.iscsi_create_auth_group, (t, p) => t.createAuthGroup({ tag: p.tag, secrets: p.secrets ?? [] }));
applies(a.iscsi_delete_auth_group, (t, p) => t.deleteAuthGroup(p.tag));
applies(a.iscsi_auth_group_add_secret, (t, { tag, ...secret }) => t.authGroupAddSecret(tag, secret));
applies(a.iscsi_auth_group_remove_secret, (t, p) => t.authGroupRemoveSecret(p.tag, p.user));
applies(a.iscsi_create_initiator_group, (t, p) => t.createInitiatorGroup(p));
applies(a.iscsi_delete_initiator_group, (t, p) => t.deleteInitiatorGroup(p.tag));
applies(a.iscsi_target_node_add_lun, (t, p) =>
  t.targetNodeAddLun(p.name, { bdev_name: p.bdev_name, lun_id: p.lun_id }),
);
applies(a.iscsi_target_node_set_auth, (t, { name, ...auth }) => t.targetNodeSetAuth(name, auth));

/** Creates the group and listens on its portals (SO_REUSEPORT) plus this reactor's private ports. */
defineControl(iscsiCreatePortalGroup, (p, done) => {
  const s = need();
  s.target.createPortalGroup({ tag: p.tag, portals: p.portals.map((x) => ({ ...x })), private: p.private });
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

defineControl(iscsiDeletePortalGroup, ({ tag }, done) => {
  const s = need();
  s.target.deletePortalGroup(tag);
  s.peers.delete(tag);
  void s.server.unlisten(tag).then(() => done(null, true));
});

defineControl(iscsiSetPeers, ({ tag, ports }, done) => {
  need().peers.set(tag, ports);
  done(null, true);
});

defineControl(iscsiCreateTargetNode, ({ params, owner }, done) => {
  const s = need();
  const node = s.target.createTargetNode(params);
  s.owners.set(node.name, owner);
  done(null, node.name);
});

defineControl(iscsiDeleteTargetNode, ({ name }, done) => {
  const s = need();
  const full = s.target.nodes.get(name)?.name ?? name;
  s.target.deleteTargetNode(name);
  for (const k of s.owners.keys()) if (k === full || k.endsWith(`:${name}`)) s.owners.delete(k);
  done(null, true);
});

/** A read-only view of this reactor's state. */
function view<R>(op: Control<void, R>, fn: (s: State) => R): void {
  defineControl(op, (_p, done) => done(null, fn(need())));
}

view(iscsiGet.options, (s) => s.target.getOptions());
view(iscsiGet.discovery_auth, (s) => ({ ...s.target.discoveryAuth }));
view(iscsiGet.auth_groups, (s) => s.target.getAuthGroups());
view(iscsiGet.initiator_groups, (s) => s.target.getInitiatorGroups());
view(iscsiGet.portal_groups, (s) => s.target.getPortalGroups());
view(iscsiGet.target_nodes, (s) => s.target.getTargetNodes());
view(iscsiGet.connections, (s) =>
  s.target.getConnections().map((c) => ({ ...c, lcore_id: reactorCore(), reactor: reactorIndex() })),
);
view(iscsiGet.stats, (s) => s.target.getStats());
view(iscsiGet.placement, (s) => ({
  accepted: s.server.accepted,
  redirected,
  moved_out: s.server.movedOut,
  moved_in: s.server.movedIn,
  adopt_failed: adoptFailed,
}));
view(iscsiGet.sessions, (s) => ({ local: s.target.sessions.size, target: s.target.sessionCount.value }));
view(iscsiGet.peers, (s) => Object.fromEntries(s.peers));
