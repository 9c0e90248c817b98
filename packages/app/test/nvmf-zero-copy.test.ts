// READ data leaves a reactor's socket straight from the request's buffer, so a request must stay
// taken until the kernel took its bytes. A proxy that reads from the target in small, delayed
// bites keeps the target's send queue backed up (partial sends, EAGAIN) while the host keeps 32
// large reads in flight and submits a new one on every completion: a request freed early would
// be reused by the next command and its queued data overwritten, which the byte-for-byte check
// (and, with data digests, the host's digest check) would catch.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type HostQpair, NvmeController } from '@storkit/nvme';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort, io, NQN } from './nvmf-helpers.js';

const BLOCKS = 32768; // 16 MiB of 512-byte blocks
const IO_BLOCKS = 256; // 128 KiB reads: one C2HData PDU each
const DEPTH = 32;
const READS = 400;

function pattern(lba: number, salt: number): Buffer {
  const b = Buffer.alloc(IO_BLOCKS * 512);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(((lba * 512 + i) ^ salt) >>> 0, i);
  return b;
}

// Forwards everything, but stops reading the target's side for a moment after every chunk.
function slowProxy(target: number): Promise<{ port: number; close: () => void }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((host) => {
    const tgt = net.connect({ host: '127.0.0.1', port: target });
    socks.add(host).add(tgt);
    host.pipe(tgt);
    tgt.on('data', (chunk) => {
      host.write(chunk);
      tgt.pause();
      setTimeout(() => tgt.resume(), 1);
    });
    const end = () => {
      host.destroy();
      tgt.destroy();
    };
    host.on('close', end).on('error', end);
    tgt.on('close', end).on('error', end);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          for (const s of socks) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

async function readBackSlowly(port: number, ddgst: boolean, salt: number): Promise<void> {
  const proxy = await slowProxy(port);
  const ctrl = await NvmeController.connect(
    `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${proxy.port} subnqn:${NQN}`,
    { hdgst: ddgst, ddgst },
  );
  try {
    const q: HostQpair = await ctrl.allocIoQpair({ depth: DEPTH + 1 });
    const ranges = BLOCKS / IO_BLOCKS;
    for (let k = 0; k < ranges; k++) {
      const lba = k * IO_BLOCKS;
      expect(await io(q, (cb) => q.write(1, lba, IO_BLOCKS, pattern(lba, salt), cb, null))).to.equal(0);
    }
    const bufs = Array.from({ length: DEPTH }, () => Buffer.alloc(IO_BLOCKS * 512));
    let submitted = 0;
    let done = 0;
    let failure: string | null = null;
    const submit = (slot: number): void => {
      const lba = ((submitted * 37) % ranges) * IO_BLOCKS;
      submitted++;
      const ok = q.read(
        1,
        lba,
        IO_BLOCKS,
        bufs[slot],
        (_x: null, st: number) => {
          done++;
          if (st !== 0) failure ??= `read of LBA ${lba} failed with status 0x${st.toString(16)}`;
          else if (!bufs[slot].equals(pattern(lba, salt)))
            failure ??= `read of LBA ${lba} returned other data`;
          if (submitted < READS) submit(slot);
        },
        null,
      );
      expect(ok).to.equal(true);
    };
    for (let s = 0; s < DEPTH; s++) submit(s);
    const until = Date.now() + 60000;
    while (done < READS) {
      if (Date.now() > until) throw new Error(`timed out after ${done} of ${READS} reads`);
      await new Promise((r) => setImmediate(r));
      q.processCompletions();
    }
    expect(failure).to.equal(null);
  } finally {
    await ctrl.close();
    proxy.close();
  }
}

describe('app: NVMe/TCP reads sent from the request buffer', function () {
  this.timeout(180000);

  // Without the SUCCESS flag the CapsuleResp follows the data in the same queue.
  for (const c2h_success of [true, false]) {
    it(`never reuses a request buffer before the socket took it, digests on and off (c2h_success ${c2h_success})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'storkit-nvmf-zc-'));
      const port = await freePort();
      const config: SpdkConfig = {
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              {
                method: 'bdev_malloc_create',
                params: { name: 'Malloc0', num_blocks: BLOCKS, block_size: 512 },
              },
            ],
          },
          {
            subsystem: 'nvmf',
            config: [
              {
                method: 'nvmf_create_transport',
                params: { trtype: 'TCP', max_queue_depth: 128, c2h_success },
              },
              { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
              {
                method: 'nvmf_subsystem_add_ns',
                params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
              },
              {
                method: 'nvmf_subsystem_add_listener',
                params: {
                  nqn: NQN,
                  listen_address: {
                    trtype: 'TCP',
                    adrfam: 'IPv4',
                    traddr: '127.0.0.1',
                    trsvcid: String(port),
                  },
                },
              },
            ],
          },
        ],
      };
      const t = new Target({
        cores: [0],
        rpcSocket: join(dir, 'rpc.sock'),
        signals: false,
        log: new Logger('error', () => {}),
        config,
      });
      await t.start();
      try {
        await readBackSlowly(port, false, 0x5a5a5a5a);
        await readBackSlowly(port, true, 0x0f1e2d3c);
      } finally {
        await t.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
