// What a transport gives the NVMe driver, so that NvmeController, the nvme bdev module and the
// tools work the same over every one of them (SPDK's spdk_nvme_transport_ops, reduced to what
// storkit's threading model needs). NVMe/TCP implements it in ../tcp/transport.ts; PCIe plugs in
// beside it by registering another NvmeTransport under its trtype.
//
// Threads. A controller has one owner thread: it opens the link (the admin queue), reads and
// writes registers, and grants I/O qpairs. An I/O qpair has one owner thread too, which may be
// another reactor: the controller's owner makes a grant (plain JSON: it crosses workers), and
// the qpair's owner opens the qpair from it with `openIoQpair`, then submits and calls
// `processCompletions(max)` from that thread only. Whatever only the admin queue can do for a
// qpair (PCIe: Create I/O Completion/Submission Queue in DMA memory that every worker can map)
// happens in `grantIoQpair` on the controller's owner; TCP needs nothing there but a queue ID.
//
// Reset. `NvmeController.reset` closes the link and every I/O qpair it owns (outstanding commands
// complete with ABORTED - SQ DELETION), opens a new link, enables the controller, and then asks
// for a new grant per qpair: the old grants die with the old link (TCP: a new controller ID;
// PCIe: the queues are gone after CC.EN = 0). Each qpair is re-opened in place by
// `HostQpair.reconnect(grant)`, on its owner thread.

import type { Capabilities, IdentifyController } from '@storkit/nvme-spec';
import type { SockHost } from '@storkit/reactor';

import type { HostQpair } from './qpair.js';
import type { TransportId, TrType } from './trid.js';

/** PCIe-only choices (ControllerOptions.pcie). */
export interface PcieOptions {
  /** Use the shadow doorbell buffer when the controller offers it (default true). */
  shadowDoorbells?: boolean;
  /** Use SGLs for I/O when the controller supports them (default true; false: PRPs always). */
  sgl?: boolean;
  /** Ring SQ doorbells once per poll rather than per command (default true, SPDK's delay_cmd_submit). */
  delayDoorbell?: boolean;
  /**
   * Put I/O submission queues in the Controller Memory Buffer when it may hold them (CMBSZ.SQS)
   * and has room (default false, as SPDK's use_cmb_sqs); `PcieQpair.sqInCmb` says where each went.
   */
  cmbSqs?: boolean;
}

/** What `connect` needs besides the transport ID. */
export interface LinkOptions {
  hostnqn: string;
  /** 16 bytes. */
  hostid: Uint8Array;
  /** NVMe/TCP header and data digests (ignored by transports without them). */
  hdgst?: boolean;
  ddgst?: boolean;
  /** Keep alive timeout in ms for the admin queue (fabrics Connect KATO; 0 = none). */
  kato: number;
  adminDepth: number;
  /** Per-command timeout in ms for the admin queue (0 = none). */
  timeoutMs: number;
  pcie?: PcieOptions;
  /** TCP: the source address/port every connection binds (SPDK's hostaddr/hostsvcid). */
  localAddress?: string;
  localPort?: number;
  /** TCP: SO_PRIORITY of every connection (SPDK's transport ID priority). */
  priority?: number;
}

/**
 * An I/O qpair's birth certificate: plain JSON (it crosses reactors), made by `grantIoQpair` on the
 * controller's owner and consumed by `openIoQpair` / `HostQpair.reconnect` on the qpair's owner.
 * Transports add their own fields (TCP: address, Connect parameters; PCIe: queue memory, doorbells).
 */
export interface IoQpairGrant {
  trtype: TrType;
  qid: number;
  /** Entries of the queue (1-based). */
  depth: number;
  /** Largest transfer one command may carry (bytes, from MDTS). */
  maxTransfer: number;
  /** Per-command timeout in ms (0 = none). */
  timeoutMs: number;
  /** The controller's reset count when granted: a grant of an older epoch is void (and its release ignored). */
  epoch: number;
}

/** Options for an I/O qpair that only its owner can decide (where its events are served). */
export interface IoQpairOptions {
  /** Queue entries (default 128, capped by the controller's MQES). */
  depth?: number;
  /** NVMe/TCP: host PDU data alignment (ICReq HPDA, 0-31). */
  hpda?: number;
  /**
   * NVMe/TCP: 'node' reads through node:net (the event loop); 'native' puts the connection on a
   * native socket group (`sockHost`, or one the controller keeps for its native qpairs), read and
   * written from a reactor poller or from `processCompletions`. Default: 'native' on a reactor
   * thread with a sockHost, else 'node'.
   */
  socket?: 'node' | 'native';
  /** NVMe/TCP: the socket group to join (a reactor's: its poller serves the connection). */
  sockHost?: SockHost;
  /**
   * NVMe/TCP: the data digests' CRC32C, as native crc32cRange — this thread's accel channel's
   * (`AccelChannel.crc32cRange`) to have them done by the module assigned crc32c. Default: the CPU's.
   */
  crc32c?: (buf: Uint8Array, start: number, end: number, seed?: number) => number;
}

/**
 * The controller's side of a transport, on the controller's owner thread: the admin queue and
 * register access. The admin queue runs its completions as they arrive (the link polls it if the
 * transport needs polling), so admin commands are promises that settle on their own.
 */
export interface ControllerLink {
  /** The admin queue (qid 0). */
  readonly admin: HostQpair;
  /** Controller ID (fabrics: from Connect; PCIe: 0 until Identify says otherwise). */
  readonly cntlid: number;
  /** Read a 4- or 8-byte register (fabrics: Property Get; PCIe: MMIO); 8-byte values as [lo, hi]. */
  getRegister(ofst: number, size: 4 | 8): Promise<[number, number]>;
  /** Write a 4-byte register. */
  setRegister(ofst: number, value: number): Promise<void>;
  /**
   * Enable the controller and wait for CSTS.RDY within CAP.TO (fabrics: CC.EN through a property;
   * PCIe: disable, wait !RDY, program AQA/ASQ/ACQ, then CC.EN). Rejects on CSTS.CFS or a timeout.
   */
  enable(cap: Capabilities): Promise<void>;
  /**
   * Make what another thread needs to open an I/O qpair (see IoQpairGrant): `base` holds the
   * transport-neutral fields the controller chose (queue ID, depth, MDTS, timeout), `cdata` the
   * controller's Identify data.
   */
  grantIoQpair(base: Omit<IoQpairGrant, 'trtype'>, cdata: IdentifyController): Promise<IoQpairGrant>;
  /** Undo what a grant made once its qpair is closed (PCIe: Delete I/O SQ/CQ; TCP: nothing). */
  revokeIoQpair(grant: IoQpairGrant): Promise<void>;
  /** Drop the link (the admin queue). The controller sent the shutdown notification before. */
  close(): void;
  /**
   * Reset in place, keeping the link (PCIe: CC.EN = 0 and every queue gone, the device kept
   * open); `enable` follows. Transports without it are reset by close and a new connect.
   */
  reset?(): Promise<void>;
  /** PCIe: the function's vendor and device IDs (SPDK's identify shows them). */
  readonly pciId?: { vendor: number; device: number };
  /**
   * PCIe: the Controller Memory Buffer's free part, for data buffers (SPDK's
   * spdk_nvme_ctrlr_map_cmb); throws ENOTSUP (with the reason) when there is none to use.
   */
  mapCmb?(): Uint8Array;
  /** PCIe: give the data area back (spdk_nvme_ctrlr_unmap_cmb). */
  unmapCmb?(): void;
  /** Set by the controller: the link saw its device removed (PCIe hot remove). */
  onRemoved?: ((err: Error) => void) | null;
}

/** One transport: registered under its trtype, chosen by a transport ID's `trtype:`. */
export interface NvmeTransport {
  readonly trtype: TrType;
  /** Reach the controller named by `trid` and open its admin queue, ready for register access. */
  connect(trid: TransportId, o: LinkOptions): Promise<ControllerLink>;
  /** On the thread that will own it: open (connect) the I/O qpair a grant describes. */
  openIoQpair(grant: IoQpairGrant, o: IoQpairOptions): Promise<HostQpair>;
}

const transports = new Map<TrType, NvmeTransport>();

/** Make a transport available to `NvmeController.connect` (once per trtype). */
export function registerTransport(t: NvmeTransport): void {
  if (transports.has(t.trtype)) throw new Error(`NVMe transport ${t.trtype} is already registered`);
  transports.set(t.trtype, t);
}

/** The transport registered for `trtype`, or undefined. */
export function getTransport(trtype: TrType): NvmeTransport | undefined {
  return transports.get(trtype);
}
