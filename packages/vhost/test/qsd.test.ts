import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

import { IoStatus } from '@storkit/block';
import { expect } from 'chai';

import { VirtioUserBlk } from '../src/index.js';
import { harness, io, pattern, pumper, sockPath, until } from './helpers.js';

describe('virtio-user initiator against qemu-storage-daemon (a real vhost-user-blk backend)', function () {
  this.timeout(60_000);

  it('reads what the image holds and writes what the image then holds', async () => {
    const h = harness();
    const img = `/dev/shm/storkit-vhost-qsd-${process.pid}.img`;
    const path = sockPath('qsd');
    const data = pattern(4 << 20, 11);
    writeFileSync(img, data);
    let qsd: ChildProcess | null = null;
    let dev: VirtioUserBlk | null = null;
    try {
      qsd = spawn(
        'qemu-storage-daemon',
        [
          '--blockdev',
          `driver=file,node-name=f,filename=${img}`,
          '--export',
          `type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=${path},writable=on`,
        ],
        { stdio: 'inherit' },
      );
      await until(h, () => existsSync(path), 'qemu-storage-daemon socket', 10_000);
      // The socket file appears at bind(), a moment before listen(): a connect in between is
      // refused, so retry that (only that) for a while.
      for (let tries = 0; ; tries++) {
        try {
          dev = await VirtioUserBlk.attach({ path, name: 'Qsd0', queueSize: 32, pump: pumper(h) });
          break;
        } catch (e) {
          if (tries >= 50 || !/Connection refused/.test(String((e as Error).message))) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      expect(dev.numBlocks * dev.blockSize).to.equal(4 << 20);
      const back = new Uint8Array(65536);
      expect(
        await io(h, (cb) =>
          dev?.readv([back.subarray(0, 4096), back.subarray(4096)], 256, 65536 / dev.blockSize, cb, null),
        ),
      ).to.equal(IoStatus.SUCCESS);
      expect(
        Buffer.from(back).equals(
          Buffer.from(data.subarray(256 * dev.blockSize, 256 * dev.blockSize + 65536)),
        ),
      ).to.equal(true);
      const w = pattern(8192, 12);
      expect(await io(h, (cb) => dev?.writev([w], 1000, 8192 / dev.blockSize, cb, null))).to.equal(
        IoStatus.SUCCESS,
      );
      expect(await io(h, (cb) => dev?.flush(0, 0, cb, null))).to.equal(IoStatus.SUCCESS);
      const file = readFileSync(img);
      expect(
        file.subarray(1000 * dev.blockSize, 1000 * dev.blockSize + 8192).equals(Buffer.from(w)),
      ).to.equal(true);
      // Many in flight at once.
      let done = 0;
      for (let i = 0; i < 64; i++) dev.readv([new Uint8Array(dev.blockSize)], i, 1, () => done++, null);
      await until(h, () => done === 64, 'batch');
    } finally {
      dev?.detach();
      qsd?.kill();
      rmSync(img, { force: true });
      h.close();
    }
  });
});
