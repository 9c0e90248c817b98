// A refused Fabrics Connect, with what its status means (NVMe over Fabrics 1.1, Figure 21).

import { CommandSpecificStatus, ConnectDataOff, Sct } from '@storkit/nvme-spec';

export class ConnectError extends Error {
  override name = 'ConnectError';
  readonly code = 'ECONNREFUSED';
  readonly status: number;
  /** For Connect Invalid Parameters: IATTR (bit 0) and IPO (bits 31:16). */
  readonly dw0: number;
  constructor(status: number, dw0: number) {
    super(
      `Fabrics Connect failed: ${connectStatusText(status, dw0)} (status 0x${status.toString(16)}, sct ${(status >> 8) & 7}, sc 0x${(status & 0xff).toString(16)})`,
    );
    this.status = status;
    this.dw0 = dw0;
  }
}

// What a Connect's command-specific status means (NVMe over Fabrics 1.1, Figure 21), naming the
// field for Connect Invalid Parameters from IATTR/IPO: an unknown subsystem is the usual cause.
function connectStatusText(status: number, dw0: number): string {
  if (((status >> 8) & 7) !== Sct.CommandSpecific) return 'generic error';
  switch (status & 0xff) {
    case CommandSpecificStatus.ConnectIncompatibleFormat:
      return 'incompatible record format';
    case CommandSpecificStatus.ConnectControllerBusy:
      return 'controller busy';
    case CommandSpecificStatus.ConnectInvalidParameters: {
      const inData = (dw0 & 1) === 1;
      const ipo = dw0 >>> 16;
      if (inData && ipo === ConnectDataOff.subnqn) return 'no such subsystem (SUBNQN)';
      if (inData && ipo === ConnectDataOff.hostnqn) return 'invalid host NQN';
      if (inData && ipo === ConnectDataOff.cntlid) return 'invalid controller ID';
      return `invalid parameter at ${inData ? 'data' : 'SQE'} offset ${ipo}`;
    }
    case CommandSpecificStatus.ConnectRestartDiscovery:
      return 'restart discovery';
    case CommandSpecificStatus.ConnectInvalidHost:
      return 'host not allowed by the subsystem';
    default:
      return 'command-specific error';
  }
}
