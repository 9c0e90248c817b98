import { ticksToUsOf } from './clock.js';
import type { Poller } from './poller.js';
import type { Reactor } from './reactor.js';
import type { Thread } from './thread.js';

// Plain-JSON snapshots shaped like the answers of SPDK's framework_get_reactors, thread_get_stats,
// thread_get_pollers and thread_get_io_channels (field names as SPDK prints them), so the RPC layer
// can return them as they are. They cross workers through comlink (structured clone).

export interface ThreadInfo {
  name: string;
  id: number;
  cpumask: string;
  elapsed: number;
}
export interface ReactorInfo {
  lcore: number;
  busy: number;
  idle: number;
  in_interrupt: boolean;
  irq_mode: boolean;
  lw_threads: ThreadInfo[];
  /** storkit extras */
  sleeps: number;
  messages_in: number;
  messages_out: number;
  dropped: number;
}
export interface ThreadStats {
  name: string;
  id: number;
  cpumask: string;
  busy: number;
  idle: number;
  active_pollers_count: number;
  timed_pollers_count: number;
  paused_pollers_count: number;
}
export interface PollerInfo {
  name: string;
  state: 'waiting' | 'running' | 'paused';
  run_count: number;
  busy_count: number;
  period_ticks?: number;
  /** storkit extras, present when the reactor times its pollers (loop option pollerTicks) */
  busy_ticks?: number;
  idle_ticks?: number;
}
export interface ThreadPollers {
  name: string;
  id: number;
  active_pollers: PollerInfo[];
  timed_pollers: PollerInfo[];
  paused_pollers: PollerInfo[];
}
export interface ThreadIoChannels {
  name: string;
  id: number;
  io_channels: { name: string; ref: number }[];
}

export function cpumask(core: number): string {
  return `0x${(1n << BigInt(core)).toString(16)}`;
}

export interface ReactorExtras {
  core: number;
  inInterrupt: boolean;
  interruptMode: boolean;
  sleeps: number;
  messagesIn: number;
  messagesOut: number;
  dropped: number;
}

export function reactorInfo(r: Reactor, x: ReactorExtras): ReactorInfo {
  return {
    lcore: r.index,
    busy: r.busyTicks,
    idle: r.idleTicks,
    in_interrupt: x.inInterrupt,
    irq_mode: x.interruptMode,
    lw_threads: r.threads.map((t) => ({
      name: t.name,
      id: t.id,
      cpumask: cpumask(x.core),
      elapsed: t.busyTicks + t.idleTicks,
    })),
    sleeps: x.sleeps,
    messages_in: x.messagesIn,
    messages_out: x.messagesOut,
    dropped: x.dropped,
  };
}

export function threadStats(t: Thread, core: number): ThreadStats {
  const p = t.pollers();
  return {
    name: t.name,
    id: t.id,
    cpumask: cpumask(core),
    busy: t.busyTicks,
    idle: t.idleTicks,
    active_pollers_count: p.active.length,
    timed_pollers_count: p.timed.length,
    paused_pollers_count: p.paused.length,
  };
}

function pollerInfo(p: Poller, state: PollerInfo['state']): PollerInfo {
  const info: PollerInfo = { name: p.name, state, run_count: p.runCount, busy_count: p.busyCount };
  if (p.timed) info.period_ticks = p.periodTicks;
  if (p.thread.host.pollerTicks) {
    info.busy_ticks = p.busyTicks;
    info.idle_ticks = p.idleTicks;
  }
  return info;
}

export function threadPollers(t: Thread): ThreadPollers {
  const p = t.pollers();
  return {
    name: t.name,
    id: t.id,
    active_pollers: p.active.map((x) => pollerInfo(x, 'waiting')),
    timed_pollers: p.timed.map((x) => pollerInfo(x, 'waiting')),
    paused_pollers: p.paused.map((x) => pollerInfo(x, 'paused')),
  };
}

export function threadIoChannels(t: Thread): ThreadIoChannels {
  return {
    name: t.name,
    id: t.id,
    io_channels: [...t.channels.values()].map((ch) => ({ name: ch.deviceName, ref: ch.refCount })),
  };
}

/** Microseconds of busy and idle time, for people rather than RPC. */
export function busyIdleUs(r: Reactor): { busyUs: number; idleUs: number } {
  return { busyUs: ticksToUsOf(r.clock, r.busyTicks), idleUs: ticksToUsOf(r.clock, r.idleTicks) };
}
