export { copyBytes } from './copy.js';
export { type PduHandler, PduReader } from './reader.js';
export { TxQueue, type TxSink } from './tx.js';
