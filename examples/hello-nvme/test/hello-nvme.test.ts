// hello-nvme over both transports: NVMe/TCP against storkit's own target (the command, as the README
// runs it) and PCIe against the software controller of @storkit/nvme/pcie-model (fast, on the host).
// PCIe against QEMU's NVMe controller bound to vfio-pci runs in the one PCIe guest boot of
// packages/cli/test/pcie-guest.test.ts (its pcie-checks.sh runs this example's command there).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Logger, Target } from '@storkit/app';
import { NvmeModelWorker } from '@storkit/nvme/pcie-model';
import { expect } from 'chai';

import { helloNvme } from '../src/hello-nvme.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const NQN = 'nqn.2016-06.io.storkit:hello';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeout: number }): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { encoding: 'utf8', ...opts }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

describe('examples/hello-nvme', function () {
  this.timeout(120_000);

  it('over NVMe/TCP: attaches to a storkit target, writes and reads back "Hello world!", detaches', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hello-nvme-'));
    const port = await freePort();
    const t = new Target({
      mask: '0x1',
      rpcSocket: join(dir, 'rpc.sock'),
      log: new Logger('error'),
      signals: false,
    });
    try {
      await t.start();
      await t.call('nvmf_create_transport', { trtype: 'TCP' });
      await t.call('bdev_malloc_create', { name: 'Malloc0', num_blocks: 8192, block_size: 512 });
      await t.call('nvmf_create_subsystem', { nqn: NQN, allow_any_host: true, model_number: 'hello target' });
      await t.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
      await t.call('nvmf_subsystem_add_listener', {
        nqn: NQN,
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
      });
      const trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
      const out = await run(process.execPath, [MAIN, '-r', trid], { timeout: 60_000 });
      expect(out.split('\n')).to.deep.equal([
        `Attaching to ${trid}`,
        out.split('\n')[1],
        '  Namespace ID: 1 size: 4 MiB (8192 blocks of 512 bytes)',
        '  Hello world!',
        'Detached',
        '',
      ]);
      expect(out.split('\n')[1]).to.match(/^Attached: hello target \(serial .*, NVMe 1\.\d\)$/);
    } finally {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('over PCIe, on the software NVMe controller: every namespace greeted, the bytes on the media', async () => {
    const m = await NvmeModelWorker.start({
      namespaces: [
        { nsid: 1, blockSize: 512, blocks: 4096 },
        { nsid: 2, blockSize: 4096, blocks: 1024 },
      ],
    });
    try {
      const lines: string[] = [];
      expect(await helloNvme(`trtype:PCIe traddr:${m.address}`, (l) => lines.push(l))).to.equal(2);
      expect(lines.filter((l) => l === '  Hello world!')).to.have.length(2);
      expect(lines).to.include('  Namespace ID: 2 size: 4 MiB (1024 blocks of 4096 bytes)');
      // What the controller holds at LBA 0 of each namespace: the message, then zeroes to the block's end.
      for (const [nsid, bs] of [
        [1, 512],
        [2, 4096],
      ]) {
        const media = await m.media(nsid, 0, bs);
        expect(Buffer.from(media.subarray(0, 13)).toString()).to.equal('Hello world!\n');
        expect(media.subarray(13).every((b) => b === 0)).to.equal(true);
      }
    } finally {
      await m.stop();
    }
  });
});
