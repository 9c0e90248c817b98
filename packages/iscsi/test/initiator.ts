import { RamBackend } from '@storkit/block/testing';
import {
  BHS_LENGTH,
  type Connection,
  encodePdu,
  encodeText,
  type IscsiOptions,
  IscsiTarget,
  type KeyPairs,
  PduParser,
  parseText,
  type SessionCount,
} from '../src/index.js';

/** A received target PDU, copied out of the parser's window. */
export interface Got {
  opcode: number;
  flags: number;
  bhs: Uint8Array;
  data: Uint8Array;
  u32(o: number): number;
}

/**
 * A scripted in-memory initiator: builds PDUs byte by byte (so tests can also build broken ones),
 * feeds them to a `Connection` and collects what the target writes back.
 */
export class TestInitiator {
  readonly conn: Connection;
  readonly got: Got[] = [];
  closed = false;
  cmdSn = 1;
  itt = 1;
  readonly #parser = new PduParser({ maxDataSegment: 1 << 24, headerDigest: false, dataDigest: false });
  readonly #tx = { headerDigest: false, dataDigest: false };

  constructor(target: IscsiTarget, remote = '127.0.0.1') {
    this.conn = target.accept(
      {
        write: (b, flushed) => {
          this.#parser.push(b, (p) => this.got.push(copy(p.bhs(), p.data())));
          flushed();
        },
        close: () => {
          this.closed = true;
        },
      },
      {
        portalGroupTag: 1,
        localAddress: '127.0.0.1',
        localPort: 3260,
        remoteAddress: remote,
        remotePort: 40000,
      },
    );
  }

  send(bhs: Uint8Array, data: Uint8Array | null = null): void {
    this.conn.receive(encodePdu(bhs, data, 0, data ? data.length : 0, this.#tx));
  }

  /** Data digests on both ways from here on (after a login that negotiated DataDigest=CRC32C). */
  useDataDigest(): void {
    this.#tx.dataDigest = true;
    this.#parser.limits.dataDigest = true;
  }

  take(): Got[] {
    return this.got.splice(0);
  }

  /** Sends one login request; returns the response. */
  login(keys: KeyPairs, csg: number, nsg: number, transit: boolean, isid = 1, tsih = 0, cid = 0): Got {
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x43;
    b[1] = (transit ? 0x80 : 0) | (csg << 2) | nsg;
    b[13] = isid;
    b[14] = tsih >>> 8;
    b[15] = tsih & 0xff;
    put32(b, 16, 0x1000 + isid);
    b[20] = cid >>> 8;
    b[21] = cid & 0xff;
    put32(b, 24, this.cmdSn);
    this.send(b, encodeText(keys));
    const r = this.take();
    if (r.length !== 1) throw new Error(`expected one login response, got ${r.length}`);
    return r[0];
  }

  /** A full login straight into full feature phase (security stage skipped). */
  loginNormal(target: string, extra: KeyPairs = [], isid = 1): Got {
    return this.login(
      [['InitiatorName', 'iqn.test:init'], ['SessionType', 'Normal'], ['TargetName', target], ...extra],
      1,
      3,
      true,
      isid,
    );
  }

  /** Sends an immediate Logout Request (close the session) with task tag `itt`; returns the response. */
  logout(itt: number): Got {
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x46;
    b[1] = 0x80;
    put32(b, 16, itt);
    put32(b, 24, this.cmdSn);
    this.send(b);
    const [rsp] = this.take();
    return rsp;
  }

  scsi(
    cdb: number[],
    opts: {
      read?: number;
      write?: Uint8Array;
      edtl?: number;
      immediate?: number;
      unsolicited?: boolean;
    } = {},
  ): void {
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x01;
    // F=0 announces unsolicited Data-Out PDUs to follow.
    b[1] = (opts.unsolicited ? 0 : 0x80) | (opts.read !== undefined ? 0x40 : 0) | (opts.write ? 0x20 : 0) | 1;
    put32(b, 16, this.itt++);
    put32(b, 20, opts.edtl ?? opts.read ?? opts.write?.length ?? 0);
    put32(b, 24, this.cmdSn++);
    b.set(cdb, 32);
    const imm = opts.write && opts.immediate ? opts.write.subarray(0, opts.immediate) : null;
    this.send(b, imm);
  }

  dataOut(itt: number, ttt: number, dataSn: number, offset: number, data: Uint8Array, final: boolean): void {
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x05;
    b[1] = final ? 0x80 : 0;
    put32(b, 16, itt);
    put32(b, 20, ttt);
    put32(b, 36, dataSn);
    put32(b, 40, offset);
    this.send(b, data);
  }
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function copy(bhs: Uint8Array, data: Uint8Array): Got {
  const b = bhs.slice();
  return {
    opcode: b[0] & 0x3f,
    flags: b[1],
    bhs: b,
    data: data.slice(),
    u32: (o) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0,
  };
}

export function keysOf(g: Got): Map<string, string> {
  return new Map(parseText(g.data));
}

/** A target node "disk1" over its own RAM LUN; `count`: the session count it shares, if any. */
export function ramTarget(
  blockSize = 512,
  numBlocks = 256,
  options: Partial<IscsiOptions> = {},
  count?: SessionCount,
): { target: IscsiTarget; ram: RamBackend; iqn: string } {
  const ram = new RamBackend({ name: 'Malloc0', blockSize, numBlocks });
  const target = new IscsiTarget(
    (n) => (n === 'Malloc0' ? ram : undefined),
    { nop_in_interval: 0, ...options },
    count,
  );
  target.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '3260' }] });
  target.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
  const node = target.createTargetNode({
    name: 'disk1',
    pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
    luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
    queue_depth: 16,
  });
  return { target, ram, iqn: node.name };
}

/** Lets the RAM backend's deferred completions run. */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
