// Namespaces served from real bdevs (@storkit/bdev malloc) through BdevBlockBackend, end to end over
// NVMe/TCP. The bdev layer runs on a reactor test harness whose app thread is current on this
// (main) thread; a setImmediate pump polls it, standing in for the reactor loop.

import { BdevBlockBackend, bdevClose, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import { bdevMallocCreate, bdevMallocDelete } from '@storkit/bdev/modules';
import { NvmeController } from '@storkit/nvme';
import { GenericStatus, MediaStatus, makeStatus, Sct } from '@storkit/nvme-spec';
import { createTestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { NvmfTarget } from '../src/target.js';
import { freePort, NQN, pollUntil } from './helpers.js';

describe('nvmf: namespaces on bdevs', function () {
  this.timeout(30000);

  it('reads, writes, compares, zeroes and unmaps a malloc bdev through the host', async () => {
    const h = createTestHarness({ reactors: 1 });
    let pumping = true;
    const pump = (): void => {
      if (!pumping) return;
      h.setThread(0);
      h.pollOnce();
      h.advanceTime(10);
      setImmediate(pump);
    };
    bdevMallocCreate({ name: 'NvmfMalloc0', num_blocks: 2048, block_size: 512 });
    h.pollThreads();
    const desc = bdevOpenExt('NvmfMalloc0', true, () => {});
    const ch = bdevGetIoChannel(desc);
    setImmediate(pump);
    const tgt = new NvmfTarget({
      resolveBdev: (name) => (name === 'NvmfMalloc0' ? new BdevBlockBackend(desc, ch) : undefined),
    });
    tgt.nvmf_create_transport({ trtype: 'TCP' });
    tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
    tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'NvmfMalloc0' } });
    const port = await freePort();
    await tgt.nvmf_subsystem_add_listener({
      nqn: NQN,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
    });
    const c = await NvmeController.connect(
      `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`,
    );
    try {
      const ns = await c.identifyNamespace(1);
      expect([ns.nsze, ns.blockSize]).to.deep.equal([2048, 512]);
      const qp = await c.allocIoQpair({ depth: 16 });
      const run = async (submit: (cb: (x: null, st: number) => void) => boolean): Promise<number> => {
        let st = -1;
        expect(submit((_x, s) => (st = s))).to.equal(true);
        await pollUntil(
          () => qp.processCompletions(),
          () => st !== -1,
        );
        return st;
      };
      const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 13) & 0xff);
      expect(await run((cb) => qp.write(1, 100, 16, data, cb, null))).to.equal(0);
      const back = new Uint8Array(8192);
      expect(await run((cb) => qp.read(1, 100, 16, back, cb, null))).to.equal(0);
      expect(Buffer.compare(back, data)).to.equal(0);
      expect(await run((cb) => qp.compare(1, 100, 16, data, cb, null))).to.equal(0);
      expect(await run((cb) => qp.compare(1, 100, 16, new Uint8Array(8192), cb, null))).to.equal(
        makeStatus(Sct.Media, MediaStatus.CompareFailure),
      );
      const next = new Uint8Array(8192).fill(9);
      expect(await run((cb) => qp.compareAndWrite(1, 100, 16, data, next, cb, null))).to.equal(0);
      expect(await run((cb) => qp.writeZeroes(1, 100, 8, cb, null))).to.equal(0);
      expect(await run((cb) => qp.deallocate(1, [[108, 8]], cb, null))).to.equal(0);
      expect(await run((cb) => qp.read(1, 100, 16, back, cb, null))).to.equal(0);
      expect(back.every((b) => b === 0)).to.equal(true);
      expect(await run((cb) => qp.flush(1, cb, null))).to.equal(0);
      expect(await run((cb) => qp.read(1, 2047, 2, new Uint8Array(1024), cb, null))).to.equal(
        makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange, true),
      );
    } finally {
      await c.close();
      await tgt.close();
      pumping = false;
      h.setThread(0);
      ch.put();
      bdevClose(desc);
      bdevMallocDelete({ name: 'NvmfMalloc0' });
      h.pollThreads();
      h.close();
    }
  });
});
