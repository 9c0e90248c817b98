// Helpers of the app's vhost tests: `storkit tgt` in this process with a private vhost socket
// directory, storkit's virtio-user initiator on a test-harness thread of this process (the host's
// view of a bdev through another vhost controller), and a QEMU TCG guest on a controller's socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { IoStatus, type IoVec } from '@storkit/block';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';
import { RpcClient } from '@storkit/rpc';
import { VirtioUserBlk } from '@storkit/vhost';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { bootGuest as boot, type GuestRun, guestMissing, initrd } from './guest.js';

export interface VhostRunning {
  target: Target;
  rpc: RpcClient;
  dir: string;
  stop(): Promise<void>;
}

/** `storkit tgt` on two reactors (cores 0 and 1) with its vhost sockets in a private directory. */
export async function runVhostTarget(
  config: SpdkConfig,
  dir?: string,
  cores = [0, 1],
): Promise<VhostRunning> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'storkit-vhost-app-'));
  const rpcSocket = join(d, 'rpc.sock');
  const target = new Target({
    cores,
    rpcSocket,
    vhostDir: d,
    signals: false,
    log: new Logger('error', () => {}),
    config,
  });
  await target.start();
  const rpc = await RpcClient.connect(rpcSocket);
  return {
    target,
    rpc,
    dir: d,
    async stop() {
      rpc.close();
      const r = await target.stop();
      if (r.leaked.length || r.code !== 0) throw new Error(`stop: ${JSON.stringify(r)}`);
    },
  };
}

export function mallocConfig(bdevs: { name: string; mib: number; blockSize?: number }[]): SpdkConfig {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: bdevs.map((b) => ({
          method: 'bdev_malloc_create',
          params: {
            name: b.name,
            num_blocks: (b.mib << 20) / (b.blockSize ?? 512),
            block_size: b.blockSize ?? 512,
          },
        })),
      },
    ],
  };
}

/** The initiator side: a harness thread in this process polls the virtio-user devices. */
export class Host {
  readonly h: TestHarness = createTestHarness({ reactors: 1 });
  readonly #devs: VirtioUserBlk[] = [];

  async attach(path: string, name = 'host', queueSize = 64): Promise<VirtioUserBlk> {
    const d = await VirtioUserBlk.attach({ path, name, queueSize, pump: () => this.poll() });
    this.#devs.push(d);
    return d;
  }

  poll(): void {
    this.h.advanceTime(100);
    this.h.pollOnce();
  }

  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      this.poll();
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await yieldLoop();
    }
  }

  /** One I/O to completion. */
  async io(submit: (cb: (s: IoStatus) => void) => void): Promise<IoStatus> {
    let st = null as IoStatus | null;
    submit((s) => {
      st = s;
    });
    await this.until(() => st !== null, 'I/O completion');
    return st as IoStatus;
  }

  /** Write `data` at byte offset `off` in chunks of the device's max transfer. */
  async write(d: VirtioUserBlk, off: number, data: Uint8Array): Promise<void> {
    for (let p = 0; p < data.length; p += d.maxTransfer) {
      const chunk = data.subarray(p, Math.min(data.length, p + d.maxTransfer));
      const st = await this.io((cb) =>
        d.writev([chunk], (off + p) / d.blockSize, chunk.length / d.blockSize, cb, null),
      );
      if (st !== IoStatus.SUCCESS) throw new Error(`write at ${off + p} failed: status ${st}`);
    }
  }

  async read(d: VirtioUserBlk, off: number, len: number): Promise<Uint8Array> {
    const out = new Uint8Array(len);
    for (let p = 0; p < len; p += d.maxTransfer) {
      const chunk: IoVec = [out.subarray(p, Math.min(len, p + d.maxTransfer))];
      const st = await this.io((cb) =>
        d.readv(chunk, (off + p) / d.blockSize, chunk[0].length / d.blockSize, cb, null),
      );
      if (st !== IoStatus.SUCCESS) throw new Error(`read at ${off + p} failed: status ${st}`);
    }
    return out;
  }

  detach(d: VirtioUserBlk): void {
    const i = this.#devs.indexOf(d);
    if (i >= 0) this.#devs.splice(i, 1);
    d.detach();
  }

  close(): void {
    // The harness closes even when a detach throws: a harness left open would stay registered in
    // this process and skew every later test file's reactor count.
    try {
      for (const d of this.#devs.splice(0)) d.detach();
    } finally {
      this.h.close();
    }
  }
}

/** Deterministic pattern bytes. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// ---- QEMU guest (guest.ts) ---------------------------------------------------------------------

export { field, type GuestRun } from './guest.js';

/** Whether QEMU, a kernel and busybox are installed (.ci/run installs them). */
export function guestAvailable(): boolean {
  return guestMissing() === null;
}

/** Boot a TCG guest whose only disk is a vhost-user-{blk,scsi}-pci device on `socket`. */
export function bootGuest(socket: string, type: 'blk' | 'scsi', workload: string): Promise<GuestRun> {
  const dev =
    type === 'blk'
      ? 'vhost-user-blk-pci,chardev=c0,num-queues=2'
      : 'vhost-user-scsi-pci,chardev=c0,num_queues=1';
  // biome-ignore format: one QEMU option per line
  return boot({
    initrd: initrd(workload, ['virtio_blk', 'scsi_mod', 'sd_mod', 'virtio_scsi']),
    append: `vhdev=${type}`,
    memoryMiB: 256,
    timeoutMs: 200_000,
    qemu: [
      '-object', 'memory-backend-memfd,id=mem,size=256M,share=on', '-numa', 'node,memdev=mem',
      '-chardev', `socket,id=c0,path=${socket}`, '-device', dev,
      '-nic', 'none',
    ],
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
