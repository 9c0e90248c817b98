import type { VirtQueue } from './virtqueue.js';

/**
 * A virtio device type served over vhost-user (rust-vmm's VhostUserBackend, SPDK's
 * vhost_dev_backend): its features, config space and request processing. The controller owns the
 * protocol, memory and rings; the device only sees started queues.
 */
export interface VirtioDevice {
  readonly kind: 'blk' | 'scsi';
  /** Queues the device supports (GET_QUEUE_NUM). */
  readonly maxQueues: number;
  /** Device-specific feature bits (the controller adds the transport ones). */
  deviceFeatures(): bigint;
  /** Fill `out` with the config space; returns its length. */
  readConfig(out: Uint8Array): number;
  /** A driver write to the config space (SET_CONFIG); unknown fields are ignored. */
  writeConfig(offset: number, data: Uint8Array): void;
  /** The queue starts: size its request pool. */
  queueStarted(q: VirtQueue, features: bigint): void;
  /** Take up to `budget` requests from `q` and submit them; returns how many were taken. */
  processQueue(q: VirtQueue, budget: number): number;
  /** The frontend is gone (disconnect, reset): forget per-connection state. */
  reset(): void;
}

/** Little-endian helpers over a byte view (guest structures need not be aligned). */
export function get32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

export function get64(b: Uint8Array, o: number): number {
  return get32(b, o) + get32(b, o + 4) * 2 ** 32;
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

export function put64(b: Uint8Array, o: number, v: number): void {
  put32(b, o, v % 2 ** 32);
  put32(b, o + 4, Math.floor(v / 2 ** 32));
}
