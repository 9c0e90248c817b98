// NVMe/TCP as an NvmeTransport (host/transport.ts): the admin queue is a TCP connection with
// Fabrics Connect to a dynamic controller; registers are properties (Property Get/Set on the admin
// queue); an I/O qpair is another connection, Fabrics-Connected with the controller ID, so a grant
// is only the Connect parameters and needs no admin command.

import {
  AdminOpcode,
  type Capabilities,
  CC,
  CSTS,
  DYNAMIC_CNTLID,
  FabricsType,
  type IdentifyController,
  NvmeStatusError,
  Reg,
  statusSc,
  statusSct,
} from '@storkit/nvme-spec';

import type { CommandSpec } from '../host/qpair.js';
import type {
  ControllerLink,
  IoQpairGrant,
  IoQpairOptions,
  LinkOptions,
  NvmeTransport,
} from '../host/transport.js';
import type { TcpTransportId, TransportId } from '../host/trid.js';
import { TcpHostQpair, type TcpQpairGrant } from './qpair.js';

class TcpLink implements ControllerLink {
  readonly admin: TcpHostQpair;
  cntlid = 0;
  readonly #trid: TcpTransportId;
  readonly #o: LinkOptions;

  constructor(trid: TcpTransportId, o: LinkOptions) {
    this.#trid = trid;
    this.#o = o;
    this.admin = new TcpHostQpair({
      traddr: trid.traddr,
      trsvcid: trid.trsvcid,
      qid: 0,
      depth: o.adminDepth,
      hdgst: o.hdgst,
      ddgst: o.ddgst,
      maxTransfer: 1 << 20,
      inCapsuleData: 8192,
      timeoutMs: o.timeoutMs,
      autoPoll: true,
      localAddress: o.localAddress,
      localPort: o.localPort,
      priority: o.priority,
    });
  }

  async open(): Promise<void> {
    await this.admin.open();
    this.cntlid = await this.admin.connect(
      this.#trid.subnqn,
      this.#o.hostnqn,
      this.#o.hostid,
      DYNAMIC_CNTLID,
      this.#o.kato,
    );
  }

  #command(spec: CommandSpec, what: string): Promise<[number, number]> {
    return new Promise((resolve, reject) => {
      const ok = this.admin.submit(
        spec,
        (_c, status, dw0, dw1) => {
          if (status === 0) resolve([dw0, dw1]);
          else
            reject(
              new NvmeStatusError(
                status,
                `${what} failed: sct ${statusSct(status)} sc 0x${statusSc(status).toString(16)}`,
              ),
            );
        },
        undefined,
      );
      if (!ok) reject(this.admin.failed ?? new Error('admin queue full'));
    });
  }

  getRegister(ofst: number, size: 4 | 8): Promise<[number, number]> {
    return this.#command(
      {
        opcode: AdminOpcode.Fabrics,
        fctype: FabricsType.PropertyGet,
        cdw10: size === 8 ? 1 : 0,
        cdw11: ofst,
      },
      `Property Get 0x${ofst.toString(16)}`,
    );
  }

  async setRegister(ofst: number, value: number): Promise<void> {
    await this.#command(
      { opcode: AdminOpcode.Fabrics, fctype: FabricsType.PropertySet, cdw10: 0, cdw11: ofst, cdw12: value },
      `Property Set 0x${ofst.toString(16)}`,
    );
  }

  async enable(cap: Capabilities): Promise<void> {
    await this.setRegister(Reg.CC, CC.enabled);
    const deadline = Date.now() + Math.max(cap.timeout, 1) * 500;
    for (;;) {
      const [csts] = await this.getRegister(Reg.CSTS, 4);
      if (csts & CSTS.CFS) throw new Error('controller fatal status while enabling');
      if (csts & CSTS.RDY) return;
      if (Date.now() > deadline) throw new Error('controller did not become ready');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async grantIoQpair(base: Omit<IoQpairGrant, 'trtype'>, cdata: IdentifyController): Promise<IoQpairGrant> {
    const t = this.#trid;
    const g: TcpQpairGrant = {
      ...base,
      trtype: 'TCP',
      traddr: t.traddr,
      trsvcid: t.trsvcid,
      subnqn: t.subnqn,
      hostnqn: this.#o.hostnqn,
      hostid: Buffer.from(this.#o.hostid).toString('hex'),
      cntlid: this.cntlid,
      hdgst: this.#o.hdgst ?? false,
      ddgst: this.#o.ddgst ?? false,
      inCapsuleData: Math.max(0, cdata.ioccsz * 16 - 64),
      ...(this.#o.localAddress === undefined ? {} : { localAddress: this.#o.localAddress }),
      ...(this.#o.localPort === undefined ? {} : { localPort: this.#o.localPort }),
      ...(this.#o.priority === undefined ? {} : { priority: this.#o.priority }),
    };
    return g;
  }

  async revokeIoQpair(): Promise<void> {}

  close(): void {
    this.admin.close();
  }
}

export const tcpTransport: NvmeTransport = {
  trtype: 'TCP',

  async connect(trid: TransportId, o: LinkOptions): Promise<ControllerLink> {
    if (trid.trtype !== 'TCP') throw new RangeError(`not a TCP transport ID: ${trid.trtype}`);
    const link = new TcpLink(trid, o);
    try {
      await link.open();
    } catch (e) {
      // A refused Connect (unknown subsystem, host not allowed) leaves the admin connection open.
      link.close();
      throw e;
    }
    return link;
  },

  async openIoQpair(grant: IoQpairGrant, o: IoQpairOptions): Promise<TcpHostQpair> {
    const g = grant as TcpQpairGrant;
    const qp = new TcpHostQpair({
      traddr: g.traddr,
      trsvcid: g.trsvcid,
      qid: g.qid,
      depth: g.depth,
      hdgst: g.hdgst,
      ddgst: g.ddgst,
      maxTransfer: g.maxTransfer,
      inCapsuleData: g.inCapsuleData,
      timeoutMs: g.timeoutMs,
      hpda: o.hpda ?? 0,
      socket: o.socket ?? (o.sockHost ? 'native' : 'node'),
      sockHost: o.sockHost,
      crc32c: o.crc32c,
      localAddress: g.localAddress,
      localPort: g.localPort,
      priority: g.priority,
    });
    try {
      await qp.open();
      await qp.connect(g.subnqn, g.hostnqn, Uint8Array.from(Buffer.from(g.hostid, 'hex')), g.cntlid, 0);
    } catch (e) {
      qp.close();
      throw e;
    }
    return qp;
  },
};
