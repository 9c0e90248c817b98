// Controller registers (NVMe Base 2.0, section 3.1): the memory-mapped BAR0 layout of a PCIe
// controller. On fabrics the same registers are "properties", reached by Property Get/Set
// (fabrics.ts) at the same offsets; only CAP, VS, CC, CSTS and NSSR exist there.

/** Register offsets in BAR0 (and property offsets on fabrics). */
export const Reg = {
  /** Controller Capabilities (8 bytes). */
  CAP: 0x00,
  /** Version. */
  VS: 0x08,
  /** Interrupt Mask Set / Clear (PCIe, pin and MSI interrupts only). */
  INTMS: 0x0c,
  INTMC: 0x10,
  /** Controller Configuration. */
  CC: 0x14,
  /** Controller Status. */
  CSTS: 0x1c,
  /** NVM Subsystem Reset. */
  NSSR: 0x20,
  /** Admin Queue Attributes: ASQS bits 11:0, ACQS bits 27:16 (both 0's based). */
  AQA: 0x24,
  /** Admin Submission / Completion Queue Base Address (8 bytes each, page aligned). */
  ASQ: 0x28,
  ACQ: 0x30,
  /** Controller Memory Buffer Location and Size. */
  CMBLOC: 0x38,
  CMBSZ: 0x3c,
  /** Controller Memory Buffer Memory Space Control (8 bytes) and Status (NVMe 1.4). */
  CMBMSC: 0x50,
  CMBSTS: 0x58,
  /** First doorbell: the admin SQ tail doorbell. */
  DOORBELLS: 0x1000,
} as const;

/** Controller Capabilities, decoded (CAP is 64-bit: passed around as a pair of dwords). */
export interface Capabilities {
  /** Maximum queue entries supported, 1-based here (MQES is 0's based on the wire). */
  maxQueueEntries: number;
  /** Worst case time to become ready (CAP.TO), in 500 ms units. */
  timeout: number;
  /** Minimum/maximum memory page size exponent: 2^(12+n). */
  mpsmin: number;
  mpsmax: number;
  /** Doorbell stride exponent (CAP.DSTRD): doorbells are 2^(2+dstrd) bytes apart. */
  dstrd: number;
  /** Contiguous Queues Required (CAP.CQR). */
  cqr: boolean;
  /** Command Sets Supported (CAP.CSS bits 44:37; bit 0 = NVM command set). */
  css: number;
  /** NVM Subsystem Reset Supported (CAP.NSSRS). */
  nssrs: boolean;
  /**
   * Controller Memory Buffer Supported (CAP.CMBS, bit 57, NVMe 1.4): CMBLOC and CMBSZ read zero
   * until the host sets CMBMSC.CRE, and the controller recognises CMB addresses only once the
   * host has given it their base (CMBMSC.CBA) and set CMBMSC.CMSE. Clear on a controller whose
   * CMB, if any, is of NVMe 1.2/1.3: always described, addressed by the BAR's bus address.
   */
  cmbs: boolean;
}

/** CAP as a target reports it: CQR set, NVM command set; DSTRD 0 unless given. */
export function encodeCap(
  c: Pick<Capabilities, 'maxQueueEntries' | 'timeout' | 'mpsmin' | 'mpsmax'> & { dstrd?: number },
): { lo: number; hi: number } {
  const lo = ((c.maxQueueEntries - 1) & 0xffff) | (1 << 16) /* CQR */ | ((c.timeout & 0xff) << 24);
  // CSS bit 37 (NVM command set) is bit 5 of the high dword.
  const hi = ((c.dstrd ?? 0) & 0xf) | (1 << 5) | ((c.mpsmin & 0xf) << 16) | ((c.mpsmax & 0xf) << 20);
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

export function decodeCap(lo: number, hi: number): Capabilities {
  return {
    maxQueueEntries: (lo & 0xffff) + 1,
    timeout: (lo >>> 24) & 0xff,
    mpsmin: (hi >>> 16) & 0xf,
    mpsmax: (hi >>> 20) & 0xf,
    dstrd: hi & 0xf,
    cqr: (lo & (1 << 16)) !== 0,
    css: (hi >>> 5) & 0xff,
    nssrs: (hi & (1 << 4)) !== 0,
    cmbs: (hi & (1 << 25)) !== 0,
  };
}

/** Controller Memory Buffer Location and Size (CMBLOC, CMBSZ), decoded; sizes in bytes. */
export interface CmbInfo {
  /** The BAR the buffer is in (CMBLOC.BIR). */
  bir: number;
  /** Where in that BAR it starts (CMBLOC.OFST in CMBSZ.SZU units). */
  offset: number;
  /** Its size (CMBSZ.SZ in CMBSZ.SZU units); 0: no controller memory buffer. */
  size: number;
  /** What it may hold: submission queues, completion queues, PRP lists and SGLs, read data, write data. */
  sqs: boolean;
  cqs: boolean;
  lists: boolean;
  rds: boolean;
  wds: boolean;
}

export function decodeCmb(cmbloc: number, cmbsz: number): CmbInfo {
  // SZU: 4 KiB, 64 KiB, 1 MiB, 16 MiB, 256 MiB, 4 GiB, 64 GiB.
  const unit = 4096 * 16 ** ((cmbsz >>> 8) & 0xf);
  return {
    bir: cmbloc & 7,
    offset: (cmbloc >>> 12) * unit,
    size: (cmbsz >>> 12) * unit,
    sqs: (cmbsz & 1) !== 0,
    cqs: (cmbsz & 2) !== 0,
    lists: (cmbsz & 4) !== 0,
    rds: (cmbsz & 8) !== 0,
    wds: (cmbsz & 16) !== 0,
  };
}

/** CMBMSC bits: Capabilities Registers Enabled, Controller Memory Space Enable; CBA is bits 63:12. */
export const CMBMSC = { CRE: 1, CMSE: 2 } as const;
/** CMBSTS: Controller Base Address Invalid (the CBA given cannot be used). */
export const CMBSTS = { CBAI: 1 } as const;

/** Controller Configuration fields. */
export const CC = {
  EN: 1,
  shn: (cc: number): number => (cc >>> 14) & 3,
  iosqes: (cc: number): number => (cc >>> 16) & 0xf,
  iocqes: (cc: number): number => (cc >>> 20) & 0xf,
  /** Memory page size field (bits 10:7): the host page size is 2^(12+mps). */
  mps: (cc: number): number => (cc >>> 7) & 0xf,
  /** CC for an enabled NVM controller with 64-byte SQEs and 16-byte CQEs (4 KiB pages, CSS 0). */
  enabled: (1 | (6 << 16) | (4 << 20)) >>> 0,
  SHN_NORMAL: 1,
  SHN_ABRUPT: 2,
} as const;

/** Controller Status fields. */
export const CSTS = {
  RDY: 1,
  CFS: 2,
  /** Shutdown status (bits 3:2). */
  shst: (csts: number): number => (csts >>> 2) & 3,
  SHST_OCCURRING: 1 << 2,
  SHST_COMPLETE: 2 << 2,
} as const;

/** Admin Queue Attributes for queues of `sqEntries` and `cqEntries` entries (1-based). */
export function encodeAqa(sqEntries: number, cqEntries: number): number {
  return (((sqEntries - 1) & 0xfff) | (((cqEntries - 1) & 0xfff) << 16)) >>> 0;
}

/** BAR0 offset of queue `qid`'s SQ tail doorbell (or, with `cq`, its CQ head doorbell). */
export function doorbellOffset(qid: number, cq: boolean, dstrd: number): number {
  return Reg.DOORBELLS + (2 * qid + (cq ? 1 : 0)) * (4 << dstrd);
}

export function versionString(vs: number): string {
  return `${vs >>> 16}.${(vs >>> 8) & 0xff}${vs & 0xff ? `.${vs & 0xff}` : ''}`;
}
