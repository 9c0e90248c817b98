// The I/OAT DMA engine (Intel QuickData, "Crystal Beach" 3.x) as software sees it: PCI IDs, the
// BAR0 register map of a channel, and the 64-byte descriptor formats. The one place the driver and
// the device model take them from. Each field was checked against SPDK's include/spdk/ioat_spec.h
// and pci_ids.h and Linux's drivers/dma/ioat/{registers,hw}.h; test/spec.test.ts pins the values
// those headers give, so a slip here cannot hide behind a driver and a model that agree.

/** Intel's PCI vendor ID. */
export const IOAT_VENDOR_ID = 0x8086;

/**
 * The I/OAT device IDs SPDK binds (include/spdk/pci_ids.h): each ID is one DMA channel exposed as
 * its own PCI function, on Sandy Bridge, Ivy Bridge, Haswell, Avoton (BWD), Broadwell-DE,
 * Broadwell, Skylake and Ice Lake Xeons.
 */
export const IOAT_DEVICE_IDS: readonly number[] = [
  // SNB0-9
  0x3c20, 0x3c21, 0x3c22, 0x3c23, 0x3c24, 0x3c25, 0x3c26, 0x3c27, 0x3c2e, 0x3c2f,
  // IVB0-9
  0x0e20, 0x0e21, 0x0e22, 0x0e23, 0x0e24, 0x0e25, 0x0e26, 0x0e27, 0x0e2e, 0x0e2f,
  // HSW0-9
  0x2f20, 0x2f21, 0x2f22, 0x2f23, 0x2f24, 0x2f25, 0x2f26, 0x2f27, 0x2f2e, 0x2f2f,
  // BWD0-3
  0x0c50, 0x0c51, 0x0c52, 0x0c53,
  // BDXDE0-3
  0x6f50, 0x6f51, 0x6f52, 0x6f53,
  // BDX0-9
  0x6f20, 0x6f21, 0x6f22, 0x6f23, 0x6f24, 0x6f25, 0x6f26, 0x6f27, 0x6f2e, 0x6f2f,
  // SKX, ICX
  0x2021, 0x0b00,
];

/** Whether (vendor, device) is an I/OAT channel SPDK would drive. */
export function isIoatDevice(vendorId: number, deviceId: number): boolean {
  return vendorId === IOAT_VENDOR_ID && IOAT_DEVICE_IDS.includes(deviceId);
}

/** PCI class of the I/OAT functions: base 0x08 (system peripheral), subclass 0x80 (other). */
export const IOAT_CLASS_CODE = 0x088000;

/** BAR0 registers (byte offsets; width in the name's comment). Channel 0 sits at 0x80. */
export const REG = {
  CHANCNT: 0x00, // u8: number of channels in this function
  XFERCAP: 0x01, // u8: log2 of the largest transfer of one descriptor (bits 4:0; 0 = 4 GiB)
  GENCTRL: 0x02, // u8
  INTRCTRL: 0x03, // u8
  ATTNSTATUS: 0x04, // u32
  CBVER: 0x08, // u8: version, major in the high nibble (0x33 = 3.3)
  INTRDELAY: 0x0c, // u16
  CS_STATUS: 0x0e, // u16
  DMACAPABILITY: 0x10, // u32: DMACAP bits
  CHANCTRL: 0x80, // u16: CHANCTRL bits
  CHANCMD: 0x84, // u8: CHANCMD commands
  DMACOUNT: 0x86, // u16: descriptors appended since the chain started (the doorbell)
  CHANSTS: 0x88, // u64: address of the last completed descriptor | CHANSTS status
  CHAINADDR: 0x90, // u64: IO address of the first descriptor
  CHANCMP: 0x98, // u64: IO address the engine writes CHANSTS to on completion
  CHANERR: 0xa8, // u32: CHANERR bits, write 1 to clear
  CHANERRMASK: 0xac, // u32
} as const;

/** Bytes of BAR0 the registers above span. */
export const BAR0_SIZE = 0x4000;

/** Supported CBVER values: the driver needs 3.0 or later. */
export const CBVER_3_0 = 0x30;
export const CBVER_3_3 = 0x33;

export const CHANCTRL = {
  PRIORITY_MASK: 0xf000,
  COMPL_DCA_EN: 0x0200,
  CHANNEL_IN_USE: 0x0100,
  DESCRIPTOR_ADDR_SNOOP_CONTROL: 0x0020,
  ERR_INT_EN: 0x0010,
  ANY_ERR_ABORT_EN: 0x0008,
  ERR_COMPLETION_EN: 0x0004,
  INT_REARM: 0x0001,
} as const;

export const CHANCMD = {
  RESET: 0x20,
  RESUME: 0x10,
  ABORT: 0x08,
  SUSPEND: 0x04,
  APPEND: 0x02,
  START: 0x01,
} as const;

/** CHANSTS bits 2:0, and the descriptor address in bits 63:6. */
export const CHANSTS = {
  STATUS_MASK: 0x7,
  ACTIVE: 0x0,
  IDLE: 0x1,
  SUSPENDED: 0x2,
  HALTED: 0x3,
  ARMED: 0x4,
  UNAFFILIATED_ERROR: 0x8,
  SOFT_ERROR: 0x10,
  /** Low bits that are not the completed descriptor's address. */
  ADDRESS_LOW_MASK: 0x3f,
} as const;

/** The completion address must be 8-byte aligned (SPDK's SPDK_IOAT_CHANCMP_ALIGN). */
export const CHANCMP_ALIGN = 8;

export const DMACAP = {
  PB: 1 << 0,
  CRC: 1 << 1,
  DCA: 1 << 4,
  BFILL: 1 << 6,
  XOR: 1 << 8,
  PQ: 1 << 9,
  DMA_DIF: 1 << 10,
} as const;

/** CHANERR bits (Linux's registers.h names them; the engine halts on any it does not mask). */
export const CHANERR = {
  SRC_ADDR: 0x0001,
  DEST_ADDR: 0x0002,
  NEXT_DESCRIPTOR_ADDR: 0x0004,
  NEXT_DESCRIPTOR_ALIGNMENT: 0x0008,
  CHAIN_ADDR_VALUE: 0x0010,
  CHANCMD: 0x0020,
  CHIPSET_UNCORRECTABLE_DATA_INTEGRITY: 0x0040,
  DMA_UNCORRECTABLE_DATA_INTEGRITY: 0x0080,
  READ_DATA: 0x0100,
  WRITE_DATA: 0x0200,
  DESCRIPTOR_CONTROL: 0x0400,
  DESCRIPTOR_LENGTH: 0x0800,
  COMPLETION_ADDR: 0x1000,
  INT_CONFIGURATION: 0x2000,
  SOFT: 0x4000,
  UNAFFILIATED: 0x8000,
} as const;

/** Names of the CHANERR bits set in `v`, for error messages. */
export function chanerrNames(v: number): string[] {
  const out: string[] = [];
  for (const [name, bit] of Object.entries(CHANERR)) if ((v & bit) !== 0) out.push(name);
  return out;
}

/** One hardware descriptor: 64 bytes, 64-byte aligned, chained through NEXT. */
export const DESC_SIZE = 64;

/** Byte offsets in a descriptor. DMA (copy) and fill share the first four fields. */
export const DESC = {
  SIZE: 0, // u32: bytes to transfer
  CONTROL: 4, // u32: CTL bits | op << 24
  SRC: 8, // u64: source address (copy) or the 8-byte fill pattern (fill)
  DEST: 16, // u64
  NEXT: 24, // u64: IO address of the next descriptor
  FILL_NEXT_DEST: 40, // u64: fill only
  USER1: 48, // u64: copy only, ignored by the engine
  USER2: 56,
} as const;

/** Control word bits (the low 24 bits; the opcode is in bits 31:24). */
export const CTL = {
  INT_ENABLE: 1 << 0,
  SRC_SNOOP_DISABLE: 1 << 1,
  DEST_SNOOP_DISABLE: 1 << 2,
  COMPLETION_UPDATE: 1 << 3,
  FENCE: 1 << 4,
  /** Copy only: a descriptor that moves no data (SPDK starts a channel with one). */
  NULL: 1 << 5,
  SRC_PAGE_BREAK: 1 << 6,
  DEST_PAGE_BREAK: 1 << 7,
  BUNDLE: 1 << 8,
  DEST_DCA: 1 << 9,
  HINT: 1 << 10,
} as const;

export const CTL_OP_SHIFT = 24;

export const OP = {
  COPY: 0x00,
  FILL: 0x01,
  XOR: 0x87,
  XOR_VAL: 0x88,
  PQ: 0x89,
  PQ_VAL: 0x8a,
  PQ_UP: 0x8b,
} as const;

/** The largest transfer of one descriptor from XFERCAP, or 0 when the value is invalid (< 12). */
export function maxTransfer(xfercap: number): number {
  const v = xfercap & 0x1f;
  if (v === 0) return 2 ** 32;
  return v < 12 ? 0 : 2 ** v;
}
