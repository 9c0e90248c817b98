/** SCSI status bytes (SAM-5). */
export const Status = {
  Good: 0x00,
  CheckCondition: 0x02,
  ConditionMet: 0x04,
  Busy: 0x08,
  ReservationConflict: 0x18,
  TaskSetFull: 0x28,
  TaskAborted: 0x40,
} as const;

/** Sense keys (SPC-4 table 27). */
export const SenseKey = {
  NoSense: 0x0,
  RecoveredError: 0x1,
  NotReady: 0x2,
  MediumError: 0x3,
  HardwareError: 0x4,
  IllegalRequest: 0x5,
  UnitAttention: 0x6,
  DataProtect: 0x7,
  AbortedCommand: 0xb,
  Miscompare: 0xe,
} as const;

/** Additional sense code and qualifier, packed as (asc << 8) | ascq. */
export const Asc = {
  NoAdditional: 0x0000,
  LogicalUnitNotSupported: 0x2500,
  InvalidOpcode: 0x2000,
  LbaOutOfRange: 0x2100,
  InvalidFieldInCdb: 0x2400,
  InvalidFieldInParameterList: 0x2600,
  ParameterListLengthError: 0x1a00,
  InvalidReleaseOfPr: 0x2604,
  InvalidFieldInInformationUnit: 0x0e03,
  MiscompareDuringVerify: 0x1d00,
  WriteProtected: 0x2700,
  PowerOnReset: 0x2900,
  BusDeviceReset: 0x2903,
  ModeParametersChanged: 0x2a01,
  ReservationsPreempted: 0x2a03,
  ReservationsReleased: 0x2a04,
  RegistrationsPreempted: 0x2a05,
  ReportedLunsDataChanged: 0x3f0e,
  SavingParametersNotSupported: 0x3900,
  InternalTargetFailure: 0x4400,
  UnrecoveredReadError: 0x1100,
  WriteError: 0x0c00,
  CommandsClearedByAnotherInitiator: 0x2f00,
  DataPhaseError: 0x4b00,
} as const;

export const SENSE_FIXED_LENGTH = 18;

/**
 * Writes fixed-format sense data (response code 0x70, SPC-4 4.5.3) into `buf` and returns its
 * length. `info`, when given, fills the INFORMATION field and sets VALID.
 */
export function writeFixedSense(buf: Uint8Array, key: number, ascq: number, info = -1): number {
  buf.fill(0, 0, SENSE_FIXED_LENGTH);
  buf[0] = info >= 0 ? 0xf0 : 0x70;
  buf[2] = key & 0x0f;
  if (info >= 0) {
    buf[3] = (info >>> 24) & 0xff;
    buf[4] = (info >>> 16) & 0xff;
    buf[5] = (info >>> 8) & 0xff;
    buf[6] = info & 0xff;
  }
  buf[7] = SENSE_FIXED_LENGTH - 8;
  buf[12] = (ascq >>> 8) & 0xff;
  buf[13] = ascq & 0xff;
  return SENSE_FIXED_LENGTH;
}

/** Sense key of fixed-format sense data (for tests and logs). */
export function senseKeyOf(sense: Uint8Array): number {
  return sense[2] & 0x0f;
}

/** Packed ASC/ASCQ of fixed-format sense data. */
export function ascOf(sense: Uint8Array): number {
  return (sense[12] << 8) | sense[13];
}
