// NVMe Base 2.x, NVMe over Fabrics 1.1 and NVMe/TCP (TP 8000) numbers. The one place both the
// target (@storkit/nvmf) and the host driver read them from.

/** Admin command set opcodes (NVMe Base 2.0, figure 141). */
export const AdminOpcode = {
  DeleteIoSq: 0x00,
  CreateIoSq: 0x01,
  GetLogPage: 0x02,
  DeleteIoCq: 0x04,
  CreateIoCq: 0x05,
  Identify: 0x06,
  Abort: 0x08,
  SetFeatures: 0x09,
  GetFeatures: 0x0a,
  AsyncEventRequest: 0x0c,
  NamespaceManagement: 0x0d,
  FirmwareCommit: 0x10,
  FirmwareDownload: 0x11,
  NamespaceAttachment: 0x15,
  KeepAlive: 0x18,
  DirectiveSend: 0x19,
  DirectiveReceive: 0x1a,
  /** Shadow doorbells and EventIdx in host memory (virtualized controllers). */
  DoorbellBufferConfig: 0x7c,
  Fabrics: 0x7f,
} as const;

/** NVM command set I/O opcodes. */
export const IoOpcode = {
  Flush: 0x00,
  Write: 0x01,
  Read: 0x02,
  WriteUncorrectable: 0x04,
  Compare: 0x05,
  WriteZeroes: 0x08,
  DatasetManagement: 0x09,
  Fabrics: 0x7f,
} as const;

/** Fabrics command types (SQE byte 4 when opcode is 0x7F). */
export const FabricsType = {
  PropertySet: 0x00,
  Connect: 0x01,
  PropertyGet: 0x04,
  AuthenticationSend: 0x05,
  AuthenticationReceive: 0x06,
  Disconnect: 0x08,
} as const;

/** Status code types (CQE status field bits 11:9). */
export const Sct = { Generic: 0, CommandSpecific: 1, Media: 2, Path: 3, Vendor: 7 } as const;

/** Generic command status (SCT 0). */
export const GenericStatus = {
  Success: 0x00,
  InvalidOpcode: 0x01,
  InvalidField: 0x02,
  CommandIdConflict: 0x03,
  DataTransferError: 0x04,
  AbortedPowerLoss: 0x05,
  InternalError: 0x06,
  AbortedByRequest: 0x07,
  AbortedSqDeletion: 0x08,
  AbortedFailedFused: 0x09,
  AbortedMissingFused: 0x0a,
  InvalidNamespaceOrFormat: 0x0b,
  CommandSequenceError: 0x0c,
  InvalidSglSegmentDescriptor: 0x0d,
  InvalidNumberOfSglDescriptors: 0x0e,
  DataSglLengthInvalid: 0x0f,
  MetadataSglLengthInvalid: 0x10,
  SglDescriptorTypeInvalid: 0x11,
  InvalidPrpOffset: 0x13,
  SglOffsetInvalid: 0x16,
  HostIdInconsistentFormat: 0x18,
  KeepAliveTimerExpired: 0x19,
  KeepAliveTimeoutInvalid: 0x1a,
  NamespaceWriteProtected: 0x20,
  CommandInterrupted: 0x21,
  TransientTransportError: 0x22,
  LbaOutOfRange: 0x80,
  CapacityExceeded: 0x81,
  NamespaceNotReady: 0x82,
  ReservationConflict: 0x83,
} as const;

/** Command-specific status (SCT 1), admin and fabrics. */
export const CommandSpecificStatus = {
  InvalidQueueIdentifier: 0x01,
  InvalidQueueSize: 0x02,
  AbortCommandLimitExceeded: 0x03,
  AsyncEventRequestLimitExceeded: 0x05,
  InvalidFirmwareSlot: 0x06,
  InvalidLogPage: 0x09,
  InvalidFormat: 0x0a,
  FeatureIdNotSaveable: 0x0d,
  FeatureNotChangeable: 0x0e,
  FeatureNotNamespaceSpecific: 0x0f,
  /** I/O: conflicting attributes (e.g. DSM with bad range count). */
  ConflictingAttributes: 0x80,
  /** Fabrics Connect: incompatible record format. */
  ConnectIncompatibleFormat: 0x80,
  ConnectControllerBusy: 0x81,
  ConnectInvalidParameters: 0x82,
  ConnectRestartDiscovery: 0x83,
  ConnectInvalidHost: 0x84,
  InvalidQueueType: 0x85,
} as const;

/** Media and data integrity errors (SCT 2). */
export const MediaStatus = {
  WriteFault: 0x80,
  UnrecoveredReadError: 0x81,
  CompareFailure: 0x85,
  AccessDenied: 0x86,
  DeallocatedOrUnwrittenBlock: 0x87,
} as const;

/** Path related status (SCT 3). */
export const PathStatus = {
  InternalPathError: 0x00,
  AnaPersistentLoss: 0x01,
  AnaInaccessible: 0x02,
  AnaTransition: 0x03,
  ControllerPathingError: 0x60,
  HostPathingError: 0x70,
  AbortedByHost: 0x71,
} as const;

/** Identify CNS values. */
export const Cns = {
  Namespace: 0x00,
  Controller: 0x01,
  ActiveNamespaceList: 0x02,
  NamespaceDescriptorList: 0x03,
  IoCommandSetNamespace: 0x05,
  IoCommandSetController: 0x06,
  IoCommandSetActiveNamespaceList: 0x07,
  IoCommandSet: 0x1c,
} as const;

/** Namespace identification descriptor types (Identify CNS 03h). */
export const NidType = { Eui64: 1, Nguid: 2, Uuid: 3, Csi: 4 } as const;

/** Log page identifiers. */
export const LogPage = {
  Error: 0x01,
  Health: 0x02,
  FirmwareSlot: 0x03,
  ChangedNamespaceList: 0x04,
  CommandsSupported: 0x05,
  Discovery: 0x70,
} as const;

/** Feature identifiers. */
export const Feature = {
  Arbitration: 0x01,
  PowerManagement: 0x02,
  TemperatureThreshold: 0x04,
  ErrorRecovery: 0x05,
  VolatileWriteCache: 0x06,
  NumberOfQueues: 0x07,
  InterruptCoalescing: 0x08,
  InterruptVectorConfig: 0x09,
  WriteAtomicity: 0x0a,
  AsyncEventConfig: 0x0b,
  KeepAliveTimer: 0x0f,
  HostIdentifier: 0x81,
} as const;

/** Asynchronous event types and notice info (completion DW0 of an AER). */
export const AsyncEvent = {
  TypeError: 0,
  TypeSmart: 1,
  TypeNotice: 2,
  NoticeNamespaceAttributeChanged: 0x00,
  NoticeFirmwareActivationStarting: 0x01,
  NoticeDiscoveryLogChanged: 0xf0,
  /** Async Event Configuration (feature 0Bh) bits. */
  ConfigNamespaceAttribute: 1 << 8,
  ConfigDiscoveryLogChange: 1 << 31,
} as const;

/** Fused operation field (SQE byte 1 bits 1:0). */
export const Fuse = { None: 0, First: 1, Second: 2 } as const;

/** PSDT = SGL for data (SQE byte 1 bits 7:6); fabrics commands always use SGLs. */
export const PSDT_SGL = 0x40;

/** SGL descriptor identifier byte (type << 4 | subtype). */
export const SglId = {
  /** Data Block, subtype Offset: NVMe/TCP in-capsule data at this offset of the capsule. */
  InCapsuleData: 0x01,
  /** Transport SGL Data Block, transport specific: NVMe/TCP data moved by H2CData/C2HData PDUs. */
  TransportDataBlock: 0x5a,
} as const;

/** Dataset Management attributes (CDW11). */
export const DsmAttribute = { IntegralRead: 1, IntegralWrite: 2, Deallocate: 4 } as const;

/** The well-known discovery subsystem NQN. */
export const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';

/** Transport types and address families in discovery log entries. */
export const TrType = { Rdma: 1, Fc: 2, Tcp: 3, Loop: 254 } as const;
export const AdrFam = { IPv4: 1, IPv6: 2, Ib: 3, Fc: 4, Loop: 254 } as const;
/** Discovery log entry subsystem types. */
export const SubType = { Referral: 1, Nvme: 2, CurrentDiscovery: 3 } as const;

/** Version register value for NVMe 1.3 (what we report, like SPDK). */
export const NVME_VERSION_1_3 = 0x00010300;

/** The controller ID asking for a dynamic controller in Connect. */
export const DYNAMIC_CNTLID = 0xffff;
