// @storkit/nvme/testing: what wire checks of an NVMe/TCP target share (@storkit/nvmf's and the
// app's): Wireshark (tshark) capture and verdicts, and the host sessions those checks capture.
// Not used by the driver itself.
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
