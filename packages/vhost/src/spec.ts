/**
 * Wire constants and struct layouts, in one place: vhost-user request codes and feature bits
 * (QEMU docs/interop/vhost-user.rst), virtio feature bits and split-ring layout (virtio 1.x
 * §2.7), virtio-blk (§5.2) and virtio-scsi (§5.6) request headers and config spaces.
 * The message codec itself is native (crates/core/src/vhost_msg.rs).
 */

/** vhost-user request codes, frontend → backend. */
export const Req = {
  GetFeatures: 1,
  SetFeatures: 2,
  SetOwner: 3,
  ResetOwner: 4,
  SetMemTable: 5,
  SetLogBase: 6,
  SetLogFd: 7,
  SetVringNum: 8,
  SetVringAddr: 9,
  SetVringBase: 10,
  GetVringBase: 11,
  SetVringKick: 12,
  SetVringCall: 13,
  SetVringErr: 14,
  GetProtocolFeatures: 15,
  SetProtocolFeatures: 16,
  GetQueueNum: 17,
  SetVringEnable: 18,
  SetBackendReqFd: 21,
  GetConfig: 24,
  SetConfig: 25,
  GetInflightFd: 31,
  SetInflightFd: 32,
  ResetDevice: 34,
  GetMaxMemSlots: 36,
  AddMemReg: 37,
  RemMemReg: 38,
  SetStatus: 39,
  GetStatus: 40,
} as const;

/** Header flags. */
export const MsgFlag = { Version: 0x1, Reply: 0x4, NeedReply: 0x8 } as const;

/** Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
export const ProtocolFeature = {
  Mq: 0,
  LogShmfd: 1,
  ReplyAck: 3,
  BackendReq: 5,
  Config: 9,
  InflightShmfd: 12,
  ResetDevice: 13,
  ConfigureMemSlots: 15,
  Status: 16,
} as const;

/** Device-independent virtio feature bits (and vhost-user's own bit 30). */
export const Feature = {
  NotifyOnEmpty: 24,
  AnyLayout: 27,
  RingIndirectDesc: 28,
  RingEventIdx: 29,
  ProtocolFeatures: 30,
  Version1: 32,
  AccessPlatform: 33,
  RingPacked: 34,
} as const;

/** A 64-bit feature mask from bit numbers. */
export function bits(...b: number[]): bigint {
  let m = 0n;
  for (const x of b) m |= 1n << BigInt(x);
  return m;
}

export function hasBit(mask: bigint, bit: number): boolean {
  return ((mask >> BigInt(bit)) & 1n) === 1n;
}

/** Split virtqueue layout. */
export const Vring = {
  /** Descriptor: addr u64, len u32, flags u16, next u16. */
  DescSize: 16,
  DescFNext: 1,
  DescFWrite: 2,
  DescFIndirect: 4,
  /** avail.flags: the driver wants no interrupts. */
  AvailFNoInterrupt: 1,
  /** used.flags: the device wants no kicks. */
  UsedFNoNotify: 1,
  /** Largest queue size the split ring allows. */
  MaxSize: 32768,
  /** Used element: id u32, len u32. */
  UsedElemSize: 8,
} as const;

/** Packed virtqueue flags and event-suppression modes (virtio 1.x §2.8). */
export const Packed = {
  DescFAvail: 1 << 7,
  DescFUsed: 1 << 15,
  EventEnable: 0,
  EventDisable: 1,
  EventDesc: 2,
} as const;

/** Bytes of each split-ring part for a queue of `n` entries (with the event-idx words). */
export function vringSizes(n: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * n, avail: 6 + 2 * n, used: 6 + 8 * n };
}

/** Same test as the spec's vring_need_event: has the other side asked to be told about `newIdx`? */
export function needEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** virtio-blk. */
export const Blk = {
  Feature: {
    SizeMax: 1,
    SegMax: 2,
    Geometry: 4,
    Ro: 5,
    BlkSize: 6,
    Flush: 9,
    Topology: 10,
    ConfigWce: 11,
    Mq: 12,
    Discard: 13,
    WriteZeroes: 14,
  },
  /** Request types (struct virtio_blk_req header: type u32, reserved u32, sector u64). */
  T: { In: 0, Out: 1, Flush: 4, GetId: 8, Discard: 11, WriteZeroes: 13 },
  /** Status byte at the end of each request. */
  S: { Ok: 0, IoErr: 1, Unsupp: 2 },
  HeaderSize: 16,
  /** GET_ID answers 20 bytes. */
  IdBytes: 20,
  /** Discard / write-zeroes segment: sector u64, num_sectors u32, flags u32. */
  SegmentSize: 16,
  SegmentFUnmap: 1,
  SectorSize: 512,
  /** struct virtio_blk_config field offsets. */
  Config: {
    capacity: 0,
    sizeMax: 8,
    segMax: 12,
    geometry: 16,
    blkSize: 20,
    physicalBlockExp: 24,
    alignmentOffset: 25,
    minIoSize: 26,
    optIoSize: 28,
    writeback: 32,
    numQueues: 34,
    maxDiscardSectors: 36,
    maxDiscardSeg: 40,
    discardSectorAlignment: 44,
    maxWriteZeroesSectors: 48,
    maxWriteZeroesSeg: 52,
    writeZeroesMayUnmap: 56,
    size: 60,
  },
} as const;

/** virtio-scsi. */
export const Scsi = {
  Feature: { Inout: 0, Hotplug: 1, Change: 2 },
  /** Request header: lun[8], tag u64, task_attr u8, prio u8, crn u8, cdb[cdb_size]. */
  ReqHeader: 19,
  /** Response header: sense_len u32, resid u32, status_qualifier u16, status u8, response u8, sense[sense_size]. */
  RespHeader: 12,
  CdbSize: 32,
  SenseSize: 96,
  /** Response codes. */
  R: {
    Ok: 0,
    Overrun: 1,
    Aborted: 2,
    BadTarget: 3,
    Reset: 4,
    Busy: 5,
    TransportFailure: 6,
    TargetFailure: 7,
    NexusFailure: 8,
    Failure: 9,
    FunctionSucceeded: 10,
    FunctionRejected: 11,
    IncorrectLun: 12,
  },
  /** Control queue request types. */
  T: { Tmf: 0, AnQuery: 1, AnSubscribe: 2 },
  Tmf: {
    AbortTask: 0,
    AbortTaskSet: 1,
    ClearAca: 2,
    ClearTaskSet: 3,
    ITNexusReset: 4,
    LogicalUnitReset: 5,
    QueryTask: 6,
    QueryTaskSet: 7,
  },
  /** Event queue events. */
  E: { NoEvent: 0, TransportReset: 1, AsyncNotify: 2, ParamChange: 3, EventsMissed: 0x80000000 },
  /** TRANSPORT_RESET reasons. */
  Evt: { Rescan: 0, Falloff: 1, Removed: 2 },
  /** Event: event u32, lun[8], reason u32. */
  EventSize: 16,
  /** struct virtio_scsi_config field offsets. */
  Config: {
    numQueues: 0,
    segMax: 4,
    maxSectors: 8,
    cmdPerLun: 12,
    eventInfoSize: 16,
    senseSize: 20,
    cdbSize: 24,
    maxChannel: 28,
    maxTarget: 30,
    maxLun: 32,
    size: 36,
  },
  /** Fixed queues: 0 = control, 1 = event, 2.. = requests. */
  ControlQueue: 0,
  EventQueue: 1,
  FirstRequestQueue: 2,
  MaxTargets: 8,
} as const;
