export { Op } from './cdb.js';
export { MAX_LUNS, ScsiDevice } from './device.js';
export { ScsiError, type ScsiErrorCode } from './errors.js';
export { LogicalUnit } from './lun.js';
export { Asc, ascOf, SenseKey, Status, senseKeyOf, writeFixedSense } from './sense.js';
export { DataDirection, Nexus, ScsiTask } from './task.js';
