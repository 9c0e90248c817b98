// storkit nvme-identify and nvme-perf over PCIe, on two software controllers in this process
// (@storkit/nvme/pcie-model, opened by PCI address like hardware): several -r, every namespace,
// the health log, SPDK identify's layout. The guest test runs the same tools on QEMU's controller
// and compares them with SPDK's own.
import { NvmeModelWorker } from '@storkit/nvme/pcie-model';
import { expect } from 'chai';

import { cli } from './in-process.js';

describe('cli: nvme-identify and nvme-perf over PCIe', function () {
  this.timeout(60000);
  let a: NvmeModelWorker;
  let b: NvmeModelWorker;
  before(async () => {
    a = await NvmeModelWorker.start({
      namespaces: [
        { nsid: 1, blockSize: 512, blocks: 8192 },
        { nsid: 3, blockSize: 4096, blocks: 1024 },
      ],
      serialNumber: 'MODEL-A',
    });
    b = await NvmeModelWorker.start({
      namespaces: [{ nsid: 1, blockSize: 4096, blocks: 4096, null: true }],
      serialNumber: 'MODEL-B',
    });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('identifies several controllers: their data, health log and every namespace, as SPDK lays it out', async () => {
    const r = await cli(
      'nvme-identify',
      '-r',
      `trtype:PCIe traddr:${a.address}`,
      '-r',
      `trtype:PCIe traddr:${b.address}`,
    );
    expect(r.code).to.equal(0);
    const [ra, rb] = r.out
      .split(/^=+\n(?=NVMe Controller at)/m)
      .filter((s) => s.includes('NVMe Controller at'));
    expect(ra).to.match(new RegExp(`^NVMe Controller at ${a.address} \\[5354:0001\\]$`, 'm'));
    expect(ra).to.match(/^Serial Number: {25}MODEL-A$/m);
    expect(ra).to.match(/^Max Data Transfer Size: {16}131072$/m);
    expect(ra).to.match(/^Max Number of I\/O Queues: {14}64$/m);
    expect(ra).to.match(/^Doorbell Buffer Config: {16}Supported$/m);
    expect(ra).to.match(/^Fused Compare & Write: {7}Supported$/m);
    expect(ra).to.match(/^Host Read Commands: {10}\d+$/m);
    expect(ra).to.match(/^Namespace ID:1\n(?:.*\n)*?Size \(in LBAs\): {24}8192 \(0GiB\)/m);
    expect(ra).to.match(
      /^Namespace ID:3\n(?:.*\n)*?LBA Format #00: Data Size: {2}4096 {2}Metadata Size: {5}0$/m,
    );
    expect(rb).to.match(/^Serial Number: {25}MODEL-B$/m);
  });

  it('drives two controllers at once and reports each and the total', async () => {
    const r = await cli(
      'nvme-perf',
      '-r',
      `trtype:PCIe traddr:${a.address}`,
      '-r',
      `trtype:PCIe traddr:${b.address}`,
      '-q',
      '16',
      '-o',
      '4096',
      '-w',
      'randrw',
      '-t',
      '1',
    );
    expect(r.code, r.out).to.equal(0);
    const rows = [...r.out.matchAll(/^PCIe \((\S+)\) NSID 1 from core \d+ : +([\d.]+)/gm)];
    expect(rows.map((m) => m[1])).to.deep.equal([a.address, b.address]);
    const total = Number(/^Total +: +([\d.]+)/m.exec(r.out)![1]);
    expect(total).to.be.closeTo(Number(rows[0][2]) + Number(rows[1][2]), 1);
    expect(r.out).to.match(/0 errors\)/);
    // Both controllers saw the traffic.
    expect((await a.stats()).readCommands).to.be.greaterThan(10);
    expect((await b.stats()).writeCommands).to.be.greaterThan(10);
  });
});
