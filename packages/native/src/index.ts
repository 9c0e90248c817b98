export { cpuCount, currentCpu, pinThread, threadAffinity, threadId } from './cpu.js';
export { crc32c, crc32cHardware, crc32cList } from './crc.js';
export { NativeError } from './errors.js';
export { tickRate, tickSource, ticks, ticksToUs, usToTicks } from './time.js';
