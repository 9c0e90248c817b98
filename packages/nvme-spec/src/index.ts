export * from './constants.js';
export * from './errors.js';
export * from './fabrics.js';
export * from './identify.js';
export * from './log.js';
export * from './registers.js';
export * from './sqe.js';
export * from './tcp-pdu.js';
