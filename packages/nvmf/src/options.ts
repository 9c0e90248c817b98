// nvmf_create_transport parameters for TCP, named as SPDK's RPC names them so a config written for
// spdk_tgt passes straight through.

import { invalid } from './errors.js';

export interface TcpTransportParams {
  trtype: 'TCP' | 'tcp';
  /** Max entries per queue (host SQ size is capped to this). */
  max_queue_depth?: number;
  /** Max entries of the admin queue. */
  max_aq_depth?: number;
  /** I/O queues one controller may create. */
  max_io_qpairs_per_ctrlr?: number;
  /** Bytes of data a command capsule may carry (0 = every write goes through R2T). */
  in_capsule_data_size?: number;
  /** Largest single I/O in bytes (MDTS is derived from it). */
  max_io_size?: number;
  /** Largest data PDU: the MAXH2CDATA the target announces and its C2HData size. */
  io_unit_size?: number;
  /** Skip the CapsuleResp after a read's last C2HData (SUCCESS flag). */
  c2h_success?: boolean;
  /**
   * SO_PRIORITY of accepted connections (0-6, the range that needs no privilege; SPDK's limit too).
   * Set on the reactors' native sockets; node:net has no setter, so that fallback refuses non-zero.
   */
  sock_priority?: number;
  /** Seconds a host's Abort waits for its command (accepted for compatibility). */
  abort_timeout_sec?: number;
  num_shared_buffers?: number;
  buf_cache_size?: number;
  dif_insert_or_strip?: boolean;
  zcopy?: boolean;
}

export type TcpTransportOptions = Required<
  Omit<TcpTransportParams, 'trtype' | 'zcopy' | 'dif_insert_or_strip'>
> & {
  trtype: 'TCP';
};

export const TCP_DEFAULTS: TcpTransportOptions = {
  trtype: 'TCP',
  max_queue_depth: 128,
  max_aq_depth: 128,
  max_io_qpairs_per_ctrlr: 127,
  in_capsule_data_size: 4096,
  max_io_size: 131072,
  io_unit_size: 131072,
  c2h_success: true,
  sock_priority: 0,
  abort_timeout_sec: 1,
  num_shared_buffers: 511,
  buf_cache_size: 32,
};

function int(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw invalid(`${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** Validate and complete nvmf_create_transport params. */
export function tcpTransportOptions(p: TcpTransportParams): TcpTransportOptions {
  if (String(p.trtype).toUpperCase() !== 'TCP') throw invalid(`unsupported trtype '${p.trtype}'`);
  if (p.dif_insert_or_strip) throw invalid('dif_insert_or_strip is not supported');
  const o: TcpTransportOptions = { ...TCP_DEFAULTS };
  for (const k of Object.keys(TCP_DEFAULTS) as (keyof TcpTransportOptions)[]) {
    if (k !== 'trtype' && p[k as keyof TcpTransportParams] !== undefined)
      (o as Record<string, unknown>)[k] = p[k as keyof TcpTransportParams];
  }
  int('max_queue_depth', o.max_queue_depth, 2, 65535);
  int('max_aq_depth', o.max_aq_depth, 2, 4096);
  int('max_io_qpairs_per_ctrlr', o.max_io_qpairs_per_ctrlr, 1, 65534);
  int('in_capsule_data_size', o.in_capsule_data_size, 0, 131072);
  if (o.in_capsule_data_size % 16) throw invalid('in_capsule_data_size must be a multiple of 16');
  int('max_io_size', o.max_io_size, 4096, 16 << 20);
  if (o.max_io_size & (o.max_io_size - 1)) throw invalid('max_io_size must be a power of two');
  int('io_unit_size', o.io_unit_size, 512, 16 << 20);
  if (o.io_unit_size % 4) throw invalid('io_unit_size must be a multiple of 4');
  int('sock_priority', o.sock_priority, 0, 6);
  if (typeof o.c2h_success !== 'boolean') throw invalid('c2h_success must be a boolean');
  return o;
}
