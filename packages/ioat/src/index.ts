// @storkit/ioat: a user-space, polled driver for the I/OAT DMA engine (SPDK lib/ioat). Device models
// for tests are in '@storkit/ioat/testing'.
export { type IoatCallback, IoatChannel, type IoatChannelOptions, type IoatDevice } from './channel.js';
export { IOAT_ECANCELED, IOAT_EIO, IOAT_OK, IoatError, type IoatErrorCode } from './errors.js';
export { IOAT_PCI_IDS, type IoatProbeOptions, type IoatProbeResult, ioatProbe } from './probe.js';
export * as spec from './spec.js';
