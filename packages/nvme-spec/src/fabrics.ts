// NVMe over Fabrics command layouts (Connect, Property Get/Set, Disconnect). The properties they
// read and write are the controller registers of registers.ts, reached by command instead of MMIO.

import { Reg } from './registers.js';
import { readU64 } from './sqe.js';

/** Connect SQE fields (byte offsets in the SQE). */
export const ConnectOff = { recfmt: 40, qid: 42, sqsize: 44, cattr: 46, kato: 48 } as const;
/** Connect data (1024 bytes, sent as in-capsule or H2C data). */
export const ConnectDataOff = { hostid: 0, cntlid: 16, subnqn: 256, hostnqn: 512 } as const;
export const CONNECT_DATA_SIZE = 1024;
export const NQN_FIELD_SIZE = 256;

/** Property Get/Set SQE fields. `attrib` bits 2:0 = size (0: 4 bytes, 1: 8 bytes). */
export const PropertyOff = { attrib: 40, ofst: 44, value: 48 } as const;

/** Property size in bytes, or 0 for an offset that names no property. */
export function propertySize(ofst: number): number {
  switch (ofst) {
    case Reg.CAP:
      return 8;
    case Reg.VS:
    case Reg.INTMS:
    case Reg.INTMC:
    case Reg.CC:
    case Reg.CSTS:
    case Reg.NSSR:
      return 4;
    default:
      return 0;
  }
}

/** A property value read from a Property Get completion (DW0/DW1). */
export const propertyValue = (dv: DataView, off: number, size: number): number =>
  size === 8 ? readU64(dv, off) : dv.getUint32(off, true);
