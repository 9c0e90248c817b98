import { SENSE_FIXED_LENGTH, Status } from './sense.js';

/**
 * An I_T nexus: one initiator port talking to one target port. Unit attentions, SPC-2
 * reservations and persistent reservation registrations all belong to a nexus.
 */
export class Nexus {
  /** Process-unique number: cheap identity for per-LUN tables. */
  readonly id: number;
  /** Initiator port name (iSCSI: `iqn...,i,0x<ISID>`). */
  readonly initiatorPort: string;
  /** Initiator device name (iSCSI: the InitiatorName). */
  readonly initiatorName: string;
  /** Relative target port identifier (iSCSI: portal group tag). */
  readonly targetPortId: number;
  /** SCSI target device name (iSCSI: the target node's IQN). */
  readonly targetName: string;
  static #next = 1;
  constructor(initiatorName: string, initiatorPort: string, targetName: string, targetPortId: number) {
    this.id = Nexus.#next++;
    this.initiatorName = initiatorName;
    this.initiatorPort = initiatorPort;
    this.targetName = targetName;
    this.targetPortId = targetPortId;
  }

  /** Target port name (iSCSI: `<target>,t,0x<tpgt>`). */
  get targetPort(): string {
    return `${this.targetName},t,0x${this.targetPortId.toString(16).padStart(4, '0')}`;
  }
}

export const DataDirection = { None: 0, Read: 1, Write: 2 } as const;
export type DataDirection = (typeof DataDirection)[keyof typeof DataDirection];

const EMPTY = new Uint8Array(0);

/**
 * One SCSI command in flight. Transports keep a pool of these and reuse them: buffers grow to the
 * largest size seen and are then reused, so steady-state I/O allocates nothing here.
 */
export class ScsiTask {
  cdb: Uint8Array = EMPTY;
  lun = 0;
  nexus: Nexus | null = null;
  /** What the transport announced it will move (iSCSI: Expected Data Transfer Length). */
  expectedLength = 0;
  direction: DataDirection = DataDirection.None;
  /** Data-out payload gathered by the transport (valid bytes: `dataOutLength`). */
  dataOut: Uint8Array = EMPTY;
  dataOutLength = 0;
  /** Data-in produced by the command (valid bytes: `dataInLength`). */
  dataIn: Uint8Array = EMPTY;
  dataInLength = 0;
  /**
   * Bytes the command itself transfers per its CDB (data-in: what it produced before truncation to
   * `expectedLength`; data-out: what it needed). Transports derive residuals from it.
   */
  transferLength = 0;
  status: number = Status.Good;
  readonly sense = new Uint8Array(SENSE_FIXED_LENGTH + 14);
  senseLength = 0;
  /** Set by ABORT TASK and friends: the completion is reported as aborted. */
  aborted = false;
  /** Transport's opaque tag (iSCSI: ITT). */
  tag = 0;
  /** Scratch state of multi-step commands (chunked WRITE SAME, UNMAP fan-out, ...). */
  step = 0;
  cursor = 0;
  end = 0;
  pending = 0;
  /** The scatter list handed to the backend: one reused array per task. */
  readonly iov: Uint8Array[] = [EMPTY];
  /** A second one (the write half of COMPARE AND WRITE). */
  readonly iov2: Uint8Array[] = [EMPTY];
  /**
   * Where backend completions of this task go (the task is the backend callback's context); set
   * by the executor running it. `info`: a seek's result block.
   */
  ioHandler: (task: ScsiTask, status: number, info: number) => void = noopIo;
  /** Called exactly once when the command finishes. */
  onDone: (task: ScsiTask) => void = noop;

  /** Resets per-command state before reuse; buffers are kept. */
  reset(): void {
    this.cdb = EMPTY;
    this.lun = 0;
    this.expectedLength = 0;
    this.direction = DataDirection.None;
    this.dataOutLength = 0;
    this.dataInLength = 0;
    this.transferLength = 0;
    this.status = Status.Good;
    this.senseLength = 0;
    this.aborted = false;
    this.tag = 0;
  }

  /** A data-in buffer of at least `n` bytes (grown, never shrunk). */
  ensureDataIn(n: number): Uint8Array {
    if (this.dataIn.length < n) this.dataIn = new Uint8Array(Math.max(n, 4096));
    return this.dataIn;
  }

  /** A data-out buffer of at least `n` bytes (grown, never shrunk). */
  ensureDataOut(n: number): Uint8Array {
    if (this.dataOut.length < n) this.dataOut = new Uint8Array(Math.max(n, 4096));
    return this.dataOut;
  }
}

function noop(): void {}
function noopIo(): void {}
