// @storkit/vhost/testing: the driver side of a split virtqueue over memory the caller owns
// (rust-vmm's MockSplitQueue), for tests that play a guest: build any chain, sane or hostile,
// and read what the device put in the used ring. Pair it with VhostUserFrontend to hand the
// memory to a backend.
export { DriverQueue, type DriverSegment } from './driver.js';
export { Blk, bits, Feature, MsgFlag, ProtocolFeature, Req, Scsi, Vring } from './spec.js';
