// Test fixtures: a target with RAM namespaces on a free loopback port.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { AccelChannel } from '@storkit/accel';
import { RamBackend } from '@storkit/block/testing';
import type { Completion, HostQpair } from '@storkit/nvme';
import { expect } from 'chai';
import type { TcpTransportParams } from '../src/options.js';
import { NvmfTarget } from '../src/target.js';

export const NQN = 'nqn.2016-06.io.spdk:cnode1';

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Fixture {
  tgt: NvmfTarget;
  port: number;
  ram: RamBackend;
  trid: string;
}

export async function startTarget(
  transport: Partial<TcpTransportParams> = {},
  o: { blocks?: number; blockSize?: number; port?: number; accel?: AccelChannel } = {},
): Promise<Fixture> {
  const tgt = new NvmfTarget({ accel: o.accel });
  tgt.nvmf_create_transport({ trtype: 'TCP', ...transport });
  const ram = new RamBackend({ name: 'Malloc0', blockSize: o.blockSize ?? 512, numBlocks: o.blocks ?? 8192 });
  tgt.registerBackend(ram);
  tgt.nvmf_create_subsystem({
    nqn: NQN,
    allow_any_host: true,
    serial_number: 'SPDK00000000000001',
    model_number: 'storkit test',
  });
  tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
  const port = o.port ?? (await freePort());
  const listen_address = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  await tgt.nvmf_subsystem_add_listener({ nqn: NQN, listen_address });
  await tgt.nvmf_subsystem_add_listener({ nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address });
  return { tgt, port, ram, trid: `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}` };
}

/** Poll a qpair until `pred` holds (or throw after `ms`). */
export async function pollUntil(poll: () => void, pred: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error('timed out polling');
    await new Promise((r) => setImmediate(r));
    poll();
  }
}

/** Counts a host qpair's commands in flight and the ones that failed: `done` is their callback. */
export class Inflight {
  count = 0;
  failures = 0;
  readonly done: Completion<null> = (_c, st) => {
    this.count--;
    if (st !== 0) this.failures++;
  };

  /** Write `nlb` random 512-byte blocks at `lba` of namespace 1, and the same bytes into `model`. */
  write(qp: HostQpair, lba: number, nlb: number, model: Uint8Array): void {
    const data = randomBytes(nlb * 512);
    model.set(data, lba * 512);
    this.count++;
    expect(qp.write(1, lba, nlb, data, this.done, null)).to.equal(true);
  }

  /** Poll `qp` until every command counted has completed. */
  drain(qp: HostQpair): Promise<void> {
    return pollUntil(
      () => qp.processCompletions(),
      () => this.count === 0,
    );
  }
}
