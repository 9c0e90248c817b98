// Imported by every reactor worker of the target app: the control operations behind the vhost_*
// RPCs. Unlike a bdev or an iSCSI target node, a vhost controller exists on ONE reactor: the main
// thread picks it from the controller's cpumask (SPDK: the first core of the mask the app runs
// on) and creates it there. The controller's socket, its guest memory mappings and its virtqueue
// pollers all live on that reactor's first thread, and every request is served from that
// reactor's bdev channel (BdevBlockBackend), so the data path never leaves the reactor.
//
// Bdevs are opened for writing without a claim (SPDK's vhost does the same), so one bdev can be
// served by vhost, iSCSI and NVMe-oF at once.
import { BdevBlockBackend, BdevEvent, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import { defineControl, defineSubsystem, getThread, reactorCore, type Thread } from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';
import { BlkDevice, VhostController, VhostError, VhostScsiDevice } from '@storkit/vhost';

import {
  type VhostControllerInfo,
  vhostAddTarget,
  vhostCore,
  vhostCreateBlk,
  vhostCreateScsi,
  vhostDelete,
  vhostGet,
  vhostRemoveTarget,
  vhostSetCoalescing,
  vhostStart,
} from '../controls/vhost.js';

/** One controller on this reactor. */
interface Ctrl {
  ctrl: VhostController;
  kind: 'blk' | 'scsi';
  /** Blk: the served bdev's backend; scsi: one per target number. */
  backends: (BdevBlockBackend | null)[];
  /** Bdev names (blk: [dev_name]; scsi: per target). */
  bdevs: (string | null)[];
  readonly: boolean;
}

/**
 * Request queues a controller offers unless num_queues says otherwise: as many as a frontend may
 * want (SPDK's vhost offers many; its virtio-user initiator asks for one per channel). A queue the
 * frontend never starts costs nothing: pollers skip it.
 */
const DEFAULT_QUEUES = 16;

const ctrls = new Map<string, Ctrl>();
/** Backends detached from a controller, closed once its in-flight requests are done. */
const retiring: { c: Ctrl; b: BdevBlockBackend }[] = [];
let host: Thread | null = null;

function thread(): Thread {
  const t = getThread() ?? host;
  if (t === null) throw Object.assign(new Error('vhost needs a reactor thread'), { code: 'EINVAL' });
  host ??= t;
  return t;
}

/** VhostError / BdevError codes pass through; anything else is EINVAL for the RPC layer. */
function errno<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') throw Object.assign(new Error((e as Error).message), { code });
    throw e;
  }
}

function fail(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function need(name: unknown): Ctrl {
  const c = typeof name === 'string' ? ctrls.get(name) : undefined;
  if (c === undefined) throw new VhostError('ENOENT', `no vhost controller ${String(name)} on this reactor`);
  return c;
}

/** A writable descriptor of `name` plus this reactor's channel; REMOVE fails later I/O. */
function open(name: string, onRemove: () => void): BdevBlockBackend {
  let desc: ReturnType<typeof bdevOpenExt>;
  try {
    desc = bdevOpenExt(name, true, (type) => {
      if (type === BdevEvent.REMOVE) onRemove();
    });
  } catch (e) {
    if ((e as { code?: string }).code === 'ENODEV') throw fail('ENODEV', `no bdev ${name}`);
    throw e;
  }
  return new BdevBlockBackend(desc, bdevGetIoChannel(desc));
}

/** Close (now, or once the controller has no request in flight) on this reactor's thread. */
function release(c: Ctrl, b: BdevBlockBackend): void {
  if (c.ctrl.inflight === 0) b.close();
  else retiring.push({ c, b });
}

function reap(): number {
  let n = 0;
  for (let i = retiring.length - 1; i >= 0; i--) {
    const r = retiring[i];
    if (r.c.ctrl.inflight > 0) continue;
    r.b.close();
    retiring.splice(i, 1);
    n++;
  }
  return n;
}

let reaper: { unregister(): void } | null = null;

function startReaper(t: Thread): void {
  reaper ??= t.registerPoller(() => (reap() > 0 ? 1 : 0), 100_000, 'vhost_retire');
}

defineControl(vhostCore, (_p, done) => done(null, reactorCore()));

defineControl(vhostCreateBlk, (p, done) => {
  const t = thread();
  if (ctrls.has(p.ctrlr)) throw new VhostError('EEXIST', `vhost controller ${p.ctrlr} already exists`);
  let c: Ctrl | undefined;
  const backend = open(p.dev_name, () => {
    // Hot remove: the descriptor goes once nothing is in flight; later requests fail (IOERR).
    if (c?.backends[0]) release(c, c.backends[0]);
  });
  try {
    const device = errno(
      () =>
        new BlkDevice(backend, {
          readonly: p.readonly === true || backend.readOnly,
          numQueues: p.num_queues ?? DEFAULT_QUEUES,
        }),
    );
    const ctrl = errno(
      () =>
        new VhostController({
          name: p.ctrlr,
          socketPath: p.socket,
          cpumask: p.cpumask,
          device,
          packedRing: p.packed_ring === true,
        }),
    );
    c = { ctrl, kind: 'blk', backends: [backend], bdevs: [p.dev_name], readonly: device.readonly };
  } catch (e) {
    backend.close();
    throw e;
  }
  c.ctrl.start();
  startReaper(t);
  ctrls.set(p.ctrlr, c);
  done(null, true);
});

defineControl(vhostCreateScsi, (p, done) => {
  const t = thread();
  if (ctrls.has(p.ctrlr)) throw new VhostError('EEXIST', `vhost controller ${p.ctrlr} already exists`);
  const device = errno(
    () => new VhostScsiDevice({ name: p.ctrlr, numQueues: p.num_queues ?? DEFAULT_QUEUES }),
  );
  const ctrl = errno(
    () =>
      new VhostController({
        name: p.ctrlr,
        socketPath: p.socket,
        cpumask: p.cpumask,
        device,
        delay: p.delay === true,
      }),
  );
  // SPDK's delay: targets are added first, vhost_start_scsi_controller starts serving.
  if (!p.delay) ctrl.start();
  startReaper(t);
  ctrls.set(p.ctrlr, { ctrl, kind: 'scsi', backends: [], bdevs: [], readonly: false });
  done(null, true);
});

defineControl(vhostStart, (p, done) => {
  const c = need(p.ctrlr);
  if (c.ctrl.started) throw new VhostError('EINVAL', `vhost controller ${p.ctrlr} is started already`);
  errno(() => c.ctrl.start());
  done(null, true);
});

defineControl(vhostAddTarget, (p, done) => {
  const c = need(p.ctrlr);
  if (c.kind !== 'scsi') throw new VhostError('EINVAL', `${p.ctrlr} is not a vhost-scsi controller`);
  const dev = c.ctrl.device as VhostScsiDevice;
  let num = p.scsi_target_num;
  if (num === -1) num = dev.targets.indexOf(null);
  if (num < 0) throw fail('ENOSPC', `${p.ctrlr} has no free SCSI target`);
  if (dev.targets[num] !== null && dev.targets[num] !== undefined)
    throw new VhostError('EEXIST', `target ${num} exists on ${p.ctrlr}`);
  const backend = open(p.bdev_name, () => {
    // Hot remove: the target goes away (the guest hears it), the descriptor once idle.
    if (c.backends[num] !== backend) return;
    if (dev.targets[num] !== null) dev.removeTarget(num);
    c.backends[num] = null;
    c.bdevs[num] = null;
    release(c, backend);
  });
  try {
    errno(() => dev.addTarget(num, backend));
  } catch (e) {
    backend.close();
    throw e;
  }
  c.backends[num] = backend;
  c.bdevs[num] = p.bdev_name;
  done(null, num);
});

defineControl(vhostRemoveTarget, (p, done) => {
  const c = need(p.ctrlr);
  if (c.kind !== 'scsi') throw new VhostError('EINVAL', `${p.ctrlr} is not a vhost-scsi controller`);
  errno(() => (c.ctrl.device as VhostScsiDevice).removeTarget(p.scsi_target_num));
  const b = c.backends[p.scsi_target_num];
  c.backends[p.scsi_target_num] = null;
  c.bdevs[p.scsi_target_num] = null;
  if (b) release(c, b);
  done(null, true);
});

defineControl(vhostSetCoalescing, (p, done) => {
  const c = need(p.ctrlr);
  errno(() => c.ctrl.setCoalescing({ delayBaseUs: p.delay_base_us, iopsThreshold: p.iops_threshold }));
  done(null, true);
});

defineControl(vhostDelete, (p, done) => {
  const c = need(p.ctrlr);
  // SPDK refuses while a frontend is connected (the guest must let go first).
  if (c.ctrl.connected) throw new VhostError('EBUSY', `vhost controller ${p.ctrlr} has a connected frontend`);
  drop(c);
  ctrls.delete(p.ctrlr);
  done(null, true);
});

function drop(c: Ctrl): void {
  c.ctrl.close();
  for (const b of c.backends) if (b) release(c, b);
  c.backends = [];
}

defineControl(vhostGet, ({ name }, done) => {
  const list = name === undefined ? [...ctrls.values()] : [need(name)];
  done(null, list.map(json));
});

/** A controller as SPDK's vhost_get_controllers shows it. */
function json(e: Ctrl): VhostControllerInfo {
  const c = e.ctrl;
  const backend_specific =
    e.kind === 'scsi'
      ? {
          scsi: e.bdevs.flatMap((b, i) =>
            b === null || b === undefined
              ? []
              : [
                  {
                    scsi_dev_num: i,
                    id: i,
                    target_name: `Target ${i}`,
                    luns: [{ id: 0, bdev_name: b }],
                  },
                ],
          ),
        }
      : {
          block: {
            readonly: e.readonly,
            bdev: e.bdevs[0],
            packed_ring: c.packedRing,
            transport: 'vhost_user_blk',
          },
        };
  return {
    ctrlr: c.name,
    cpumask: c.cpumask,
    delay_base_us: c.coalescing.delayBaseUs,
    iops_threshold: c.coalescing.iopsThreshold,
    socket: c.socketPath,
    sessions: c.connected
      ? [{ vid: 0, id: 0, name: `${c.name}s0`, started: c.queues.some((q) => q.running) }]
      : [],
    backend_specific,
    // storkit extras
    reactor_core: reactorCore(),
    started: c.started,
    stats: { ...c.stats, inflight: c.inflight },
  };
}

// At shutdown: every controller stops (frontends dropped, sockets removed), then the descriptors.
defineSubsystem({
  name: 'vhost',
  fini(done) {
    const t = host;
    const prev = t ? setCurrentThread(t) : null;
    try {
      for (const c of ctrls.values()) {
        c.ctrl.close();
        for (const b of c.backends) b?.close();
      }
      for (const r of retiring.splice(0)) r.b.close();
      reaper?.unregister();
      reaper = null;
    } finally {
      if (t) setCurrentThread(prev);
    }
    ctrls.clear();
    done();
  },
});
