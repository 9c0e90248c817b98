// The operations, numbered and named as SPDK's enum spdk_accel_opcode (the names are what the RPCs
// and save_config use). storkit implements the first six; compression, encryption, XOR and DIF are
// not here, and the RPCs do not pretend they are.

export const ACCEL_OPC = {
  COPY: 0,
  FILL: 1,
  DUALCAST: 2,
  COMPARE: 3,
  CRC32C: 4,
  COPY_CRC32C: 5,
} as const;

export type AccelOpcode = (typeof ACCEL_OPC)[keyof typeof ACCEL_OPC];

/** Names by opcode. */
export const ACCEL_OPC_NAMES: readonly string[] = [
  'copy',
  'fill',
  'dualcast',
  'compare',
  'crc32c',
  'copy_crc32c',
];

export const ACCEL_OPC_COUNT = ACCEL_OPC_NAMES.length;

/** The opcode called `name`, or -1. */
export function accelOpcodeByName(name: string): number {
  return ACCEL_OPC_NAMES.indexOf(name);
}
