// NVMe over Fabrics command layouts (Connect, Property Get/Set, Disconnect) and the controller
// properties (CAP, VS, CC, CSTS) that replace PCIe registers on fabrics.

import { readU64 } from './sqe.js';

/** Connect SQE fields (byte offsets in the SQE). */
export const ConnectOff = { recfmt: 40, qid: 42, sqsize: 44, cattr: 46, kato: 48 } as const;
/** Connect data (1024 bytes, sent as in-capsule or H2C data). */
export const ConnectDataOff = { hostid: 0, cntlid: 16, subnqn: 256, hostnqn: 512 } as const;
export const CONNECT_DATA_SIZE = 1024;
export const NQN_FIELD_SIZE = 256;

/** Property Get/Set SQE fields. `attrib` bits 2:0 = size (0: 4 bytes, 1: 8 bytes). */
export const PropertyOff = { attrib: 40, ofst: 44, value: 48 } as const;

/** Property offsets. */
export const Prop = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
} as const;

/** Property size in bytes, or 0 for an offset that names no property. */
export function propertySize(ofst: number): number {
  switch (ofst) {
    case Prop.CAP:
      return 8;
    case Prop.VS:
    case Prop.INTMS:
    case Prop.INTMC:
    case Prop.CC:
    case Prop.CSTS:
    case Prop.NSSR:
      return 4;
    default:
      return 0;
  }
}

/** Controller Capabilities as a pair of dwords (CAP is 64-bit). */
export interface Capabilities {
  /** Maximum queue entries supported, 1-based here (MQES is 0's based on the wire). */
  maxQueueEntries: number;
  /** Worst case time to become ready, in 500 ms units. */
  timeout: number;
  /** Minimum/maximum memory page size exponent: 2^(12+n). */
  mpsmin: number;
  mpsmax: number;
}

export function encodeCap(c: Capabilities): { lo: number; hi: number } {
  const lo = ((c.maxQueueEntries - 1) & 0xffff) | (1 << 16) /* CQR */ | ((c.timeout & 0xff) << 24);
  // CSS bit 37 (NVM command set) is bit 5 of the high dword.
  const hi = (1 << 5) | ((c.mpsmin & 0xf) << 16) | ((c.mpsmax & 0xf) << 20);
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

export function decodeCap(lo: number, hi: number): Capabilities {
  return {
    maxQueueEntries: (lo & 0xffff) + 1,
    timeout: (lo >>> 24) & 0xff,
    mpsmin: (hi >>> 16) & 0xf,
    mpsmax: (hi >>> 20) & 0xf,
  };
}

/** Controller Configuration fields. */
export const CC = {
  EN: 1,
  shn: (cc: number): number => (cc >>> 14) & 3,
  iosqes: (cc: number): number => (cc >>> 16) & 0xf,
  iocqes: (cc: number): number => (cc >>> 20) & 0xf,
  /** CC for an enabled NVM controller with 64-byte SQEs and 16-byte CQEs. */
  enabled: (1 | (6 << 16) | (4 << 20)) >>> 0,
  SHN_NORMAL: 1,
} as const;

/** Controller Status fields. */
export const CSTS = { RDY: 1, CFS: 2, SHST_OCCURRING: 1 << 2, SHST_COMPLETE: 2 << 2 } as const;

export function versionString(vs: number): string {
  return `${vs >>> 16}.${(vs >>> 8) & 0xff}${vs & 0xff ? `.${vs & 0xff}` : ''}`;
}

/** A property value read from a Property Get completion (DW0/DW1). */
export const propertyValue = (dv: DataView, off: number, size: number): number =>
  size === 8 ? readU64(dv, off) : dv.getUint32(off, true);
