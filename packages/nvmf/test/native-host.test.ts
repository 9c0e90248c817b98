// The NVMe/TCP host on a native socket group (TcpHostQpair socket: 'native') against the in-process
// target: data integrity with and without digests, a send buffer the kernel cannot take at once,
// and connections that end under outstanding commands.

import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { IoCb } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import {
  type Completion,
  HostQpairError,
  NvmeController,
  STATUS_ABORTED_SQ_DELETION,
  TcpHostQpair,
} from '@storkit/nvme';
import { expect } from 'chai';
import { freePort, Inflight, NQN, pollUntil, startTarget } from './helpers.js';

/** A TCP relay in front of the target: lets a test pause, close or reset the host's connection. */
class Relay {
  readonly server: net.Server;
  readonly hostSide: net.Socket[] = [];
  port = 0;
  constructor(targetPort: number) {
    this.server = net.createServer((c) => {
      const up = net.connect(targetPort, '127.0.0.1');
      c.setNoDelay(true);
      up.setNoDelay(true);
      c.pipe(up);
      up.pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
      this.hostSide.push(c);
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${this.port} subnqn:${NQN}`;
  }
  close(): void {
    for (const s of this.hostSide) s.destroy();
    this.server.close();
  }
}

describe('nvmf/nvme: native host qpair ↔ target', function () {
  this.timeout(30000);

  for (const [hdgst, ddgst] of [
    [false, false],
    [true, true],
    [true, false],
    [false, true],
  ] as const) {
    it(`keeps data intact, many in flight (hdgst=${hdgst} ddgst=${ddgst})`, async () => {
      // Small H2C/C2H units: several data PDUs per command; in-capsule for small writes only.
      const f = await startTarget({ in_capsule_data_size: 4096, io_unit_size: 8192 }, { blocks: 8192 });
      const c = await NvmeController.connect(f.trid, { hdgst, ddgst });
      try {
        const qp = (await c.allocIoQpair({ depth: 32, socket: 'native' })) as TcpHostQpair;
        expect(qp.native).to.equal(true);
        expect(qp.hdgst).to.equal(hdgst);
        expect(qp.ddgst).to.equal(ddgst);
        const model = new Uint8Array(f.ram.data.length);
        const flight = new Inflight();
        // Writes of 1-128 blocks, 24 at a time, at disjoint places per batch.
        for (let batch = 0; batch < 8; batch++) {
          for (let k = 0; k < 24; k++) {
            const nlb = 1 + (((batch * 24 + k) * 53) % 128);
            const lba = k * 256 + (batch % 2) * 64;
            flight.write(qp, lba, nlb, model);
          }
          await flight.drain(qp);
        }
        expect(flight.failures).to.equal(0);
        expect(Buffer.compare(f.ram.data, model)).to.equal(0);
        // Reads back through the host, all at once, 128 blocks each.
        f.ram.data.set(randomBytes(f.ram.data.length));
        const bufs = Array.from({ length: 32 }, () => new Uint8Array(128 * 512));
        for (let k = 0; k < 32; k++) {
          flight.count++;
          expect(qp.read(1, k * 128, 128, bufs[k], flight.done, null)).to.equal(true);
        }
        await flight.drain(qp);
        expect(flight.failures).to.equal(0);
        for (let k = 0; k < 32; k++)
          expect(Buffer.compare(bufs[k], f.ram.data.subarray(k * 128 * 512, (k + 1) * 128 * 512))).to.equal(
            0,
          );
        expect(qp.stats.completed).to.equal(8 * 24 + 32 + 1); // + Fabrics Connect
        await c.freeIoQpair(qp);
        expect(qp.connected).to.equal(false);
      } finally {
        await c.close();
        await f.tgt.close();
      }
    });
  }

  it('holds batches the kernel cannot take yet and sends them, in order, once it can', async () => {
    // 128 KiB in capsule: 64 writes queue 8 MiB while the relay does not read the host's socket.
    const f = await startTarget({ in_capsule_data_size: 131072, max_queue_depth: 128 }, { blocks: 32768 });
    const relay = new Relay(f.port);
    const trid = await relay.listen();
    const c = await NvmeController.connect(trid, {});
    try {
      const qp = (await c.allocIoQpair({ depth: 65, socket: 'native' })) as TcpHostQpair;
      const ioSock = relay.hostSide[relay.hostSide.length - 1];
      ioSock.pause();
      const model = new Uint8Array(f.ram.data.length);
      const flight = new Inflight();
      for (let k = 0; k < 64; k++) flight.write(qp, k * 256, 256, model);
      // Poll for a while with the relay stalled: nothing completes, nothing is lost.
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 2));
        qp.processCompletions();
      }
      expect(flight.count).to.equal(64);
      expect(qp.connected).to.equal(true);
      expect(qp.stats.txBlocked).to.be.greaterThan(0);
      ioSock.resume();
      await flight.drain(qp);
      expect(flight.failures).to.equal(0);
      expect(Buffer.compare(f.ram.data, model)).to.equal(0);
    } finally {
      await c.close();
      relay.close();
      await f.tgt.close();
    }
  });

  for (const how of ['close', 'reset'] as const) {
    it(`fails outstanding commands with ABORTED - SQ DELETION and reports it when the target side ${how}s`, async () => {
      const f = await startTarget();
      // A namespace whose reads never complete: the commands stay outstanding at the target.
      const hung = new RamBackend({ name: 'Hung0', blockSize: 512, numBlocks: 64 });
      hung.readv = <C>(_i: readonly Uint8Array[], _o: number, _n: number, _d: IoCb<C>, _c: C): void => {};
      f.tgt.registerBackend(hung);
      f.tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 2, bdev_name: 'Hung0' } });
      const relay = new Relay(f.port);
      const trid = await relay.listen();
      const c = await NvmeController.connect(trid, {});
      try {
        const qp = (await c.allocIoQpair({ depth: 16, socket: 'native' })) as TcpHostQpair;
        const failures: Error[] = [];
        const prev = qp.onFailure;
        qp.onFailure = (q, e) => {
          failures.push(e);
          prev?.(q, e);
        };
        const statuses: number[] = [];
        const done: Completion<null> = (_c, st) => {
          statuses.push(st);
        };
        for (let k = 0; k < 8; k++) expect(qp.read(2, k, 1, new Uint8Array(512), done, null)).to.equal(true);
        // Let the commands reach the target before its side goes away.
        for (let i = 0; i < 20; i++) {
          await new Promise((r) => setTimeout(r, 2));
          qp.processCompletions();
        }
        expect(statuses).to.deep.equal([]);
        const ioSock = relay.hostSide[relay.hostSide.length - 1];
        if (how === 'close') ioSock.end();
        else ioSock.resetAndDestroy();
        await pollUntil(
          () => qp.processCompletions(),
          () => statuses.length === 8,
        );
        expect(statuses).to.deep.equal(new Array(8).fill(STATUS_ABORTED_SQ_DELETION));
        expect(failures).to.have.length(1);
        expect(failures[0]).to.be.instanceOf(HostQpairError);
        expect(qp.connected).to.equal(false);
        expect(qp.failed).to.equal(failures[0]);
        expect(qp.read(1, 0, 1, new Uint8Array(512), done, null)).to.equal(false);
      } finally {
        await c.close();
        relay.close();
        await f.tgt.close();
      }
    });
  }

  it('a refused connection rejects open() with ECONNREFUSED', async () => {
    const port = await freePort();
    const qp = new TcpHostQpair({
      traddr: '127.0.0.1',
      trsvcid: String(port),
      qid: 1,
      depth: 4,
      socket: 'native',
    });
    try {
      await qp.open();
      expect.fail('open() succeeded');
    } catch (e) {
      expect(e).to.be.instanceOf(HostQpairError);
      expect((e as HostQpairError).code).to.equal('ECONNREFUSED');
      expect((e as Error).message).to.match(/ECONNREFUSED/);
    }
    expect(qp.connected).to.equal(false);
  });

  it('resolves a host name (its first address) before connecting', async function () {
    if ((await lookup('localhost')).address !== '127.0.0.1') this.skip();
    const f = await startTarget();
    try {
      const qp = new TcpHostQpair({
        traddr: 'localhost',
        trsvcid: String(f.port),
        qid: 1,
        depth: 4,
        socket: 'native',
      });
      await qp.open(); // TCP and ICReq/ICResp: no Fabrics Connect needed to prove the address
      expect(qp.connected).to.equal(true);
      qp.close();
      expect(qp.connected).to.equal(false);
    } finally {
      await f.tgt.close();
    }
  });

  it('a native qpair cannot poll itself (autoPoll)', () => {
    expect(
      () =>
        new TcpHostQpair({
          traddr: '127.0.0.1',
          trsvcid: '1',
          qid: 0,
          depth: 4,
          socket: 'native',
          autoPoll: true,
        }),
    ).to.throw(RangeError);
  });

  it('reconnects in place on a controller reset, still native', async () => {
    const f = await startTarget();
    const c = await NvmeController.connect(f.trid, {});
    try {
      const qp = (await c.allocIoQpair({ depth: 8, socket: 'native' })) as TcpHostQpair;
      await c.reset();
      expect(qp.connected).to.equal(true);
      expect(qp.native).to.equal(true);
      f.ram.data.fill(0x5a, 0, 4096);
      const buf = new Uint8Array(4096);
      let st = -1;
      expect(qp.read(1, 0, 8, buf, (_c, s) => (st = s), null)).to.equal(true);
      await pollUntil(
        () => qp.processCompletions(),
        () => st !== -1,
      );
      expect(st).to.equal(0);
      expect(buf.every((b) => b === 0x5a)).to.equal(true);
    } finally {
      await c.close();
      await f.tgt.close();
    }
  });
});
