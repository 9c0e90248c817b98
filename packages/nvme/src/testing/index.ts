// @storkit/nvme/testing: what wire checks of an NVMe/TCP target share (@storkit/nvmf's and the
// app's): Wireshark (tshark) capture and verdicts, the host sessions those checks capture, and
// SPDK's programs as peers (spdk_tgt, spdk_nvme_identify, spdk_nvme_perf). Not used by the driver.

export { freePort, PEERS, type SpdkTgt, spdkBin, spdkTool, startSpdkTgt } from './spdk.js';
export {
  decodeFor,
  digestVerdicts,
  explainFrame,
  flaggedFrames,
  PROBLEMS,
  pduTypes,
  requireTshark,
  startCapture,
  tshark,
} from './tshark.js';
export { badDigestSession, session } from './wire-sessions.js';
