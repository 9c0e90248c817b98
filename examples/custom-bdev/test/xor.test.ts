// The plugin in the unchanged app: `storkit tgt --plugin dist/src/plugin.js --json CONFIG` on two
// reactors, the xor bdev over a file-backed bdev exported over iSCSI. QEMU's qemu-io (libiscsi) writes
// and reads through it; the file itself must hold the bytes XORed with the key. Then the methods over
// RPC (storkit rpc --plugin: positional params, a bdev waiting for its base, delete, a refused key),
// and save_config's output loaded into a fresh target that reads the same data back.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const PLUGIN = fileURLToPath(new URL('../src/plugin.js', import.meta.url));
/** The storkit command of the installed @storkit/cli (its package root is above dist/src/index.js). */
const CLI_ROOT = join(dirname(createRequire(import.meta.url).resolve('@storkit/cli')), '..', '..');
const STORKIT = join(CLI_ROOT, JSON.parse(readFileSync(join(CLI_ROOT, 'package.json'), 'utf8')).bin.storkit);
const KEY = 0xa5;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `storkit tgt ... --plugin` until its banner's last line. */
function tgt(args: string[]): Promise<{ child: ChildProcess; out: string; exited: Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [STORKIT, 'tgt', '-m', '0x3', '--no-stats', '--plugin', PLUGIN, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let out = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('  stop:')) resolve({ child, out, exited });
    });
    void exited.then((code) => reject(new Error(`storkit tgt exited (${code}):\n${out}`)));
  });
}

/** storkit rpc (rpc.py's command lines; an RPC error is printed on stdout, as rpc.py does). */
function rpc(sock: string, ...args: string[]): unknown {
  const r = spawnSync(process.execPath, [STORKIT, 'rpc', '-s', sock, '--plugin', PLUGIN, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0)
    throw new Error(`storkit rpc ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  // rpc.py prints a created bdev's name bare (print_json), other results as JSON.
  try {
    return JSON.parse(r.stdout);
  } catch {
    return r.stdout.trim();
  }
}

/** qemu-io against an iSCSI LUN (libiscsi inside QEMU: an initiator storkit did not write). */
function qemuIo(url: string, ...cmds: string[]): string {
  return execFileSync('qemu-io', ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), url], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('examples/custom-bdev: the xor bdev module as a storkit tgt plugin', function () {
  this.timeout(180_000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'custom-bdev-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stores XORed bytes on its base, reads them back decoded, over iSCSI, and reloads from save_config', async () => {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, '');
    truncateSync(disk, 64 << 20);
    const port = await freePort();
    const config = {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_aio_create', params: { name: 'Aio0', filename: disk, block_size: 512 } },
            { method: 'bdev_xor_create', params: { name: 'Xor0', base_bdev_name: 'Aio0', key: KEY } },
          ],
        },
        {
          subsystem: 'iscsi',
          config: [
            {
              method: 'iscsi_create_portal_group',
              params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(port) }] },
            },
            {
              method: 'iscsi_create_initiator_group',
              params: { tag: 2, initiators: ['ANY'], netmasks: ['ANY'] },
            },
            {
              method: 'iscsi_create_target_node',
              params: {
                name: 'xor',
                pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
                luns: [{ bdev_name: 'Xor0', lun_id: 0 }],
                queue_depth: 32,
                disable_chap: true,
              },
            },
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const sock = join(dir, 'rpc.sock');
    const url = `iscsi://127.0.0.1:${port}/iqn.2016-06.io.spdk:xor/0`;

    let t = await tgt(['-r', sock, '--json', join(dir, 'config.json')]);
    let saved: unknown;
    try {
      expect(t.out).to.include('bdev:      Xor0  64 MiB, 512-byte blocks');
      // Two patterns over two ranges, one of them crossing the 128 KiB split of the xor bdev.
      qemuIo(url, 'write -P 0x3c 1M 64k', 'write -P 0xc3 2M 192k');
      const back = qemuIo(url, 'read -P 0x3c 1M 64k', 'read -P 0xc3 2M 192k');
      expect(back).to.not.include('Pattern verification failed');
      expect(back).to.include('read 196608/196608 bytes at offset 2097152');
      // At rest: every byte XORed with the key.
      const raw = Buffer.alloc(64 << 10);
      const fd = openSync(disk, 'r');
      readSync(fd, raw, 0, raw.length, 1 << 20);
      expect([...new Set(raw)]).to.deep.equal([0x3c ^ KEY]);
      readSync(fd, raw, 0, raw.length, (2 << 20) + (128 << 10));
      expect([...new Set(raw)]).to.deep.equal([0xc3 ^ KEY]);

      const [info] = rpc(sock, 'bdev_get_bdevs', '-b', 'Xor0') as {
        product_name: string;
        driver_specific: unknown;
      }[];
      expect(info.product_name).to.equal('xor');
      expect(info.driver_specific).to.deep.equal({ xor: { name: 'Xor0', base_bdev_name: 'Aio0', key: KEY } });
      // Positional params as --help lists them (base_bdev_name, name, key); the base comes later:
      // the module's examine builds the bdev when it appears, on every reactor.
      expect(rpc(sock, 'bdev_xor_create', 'Malloc9', 'XorLater', '7')).to.equal('XorLater');
      expect(rpc(sock, 'bdev_get_bdevs')).to.satisfy(
        (l: { name: string }[]) => !l.some((b) => b.name === 'XorLater'),
      );
      // rpc.py's size in MiB: 1 MiB of 512-byte blocks.
      expect(rpc(sock, 'bdev_malloc_create', '-b', 'Malloc9', '1', '512')).to.equal('Malloc9');
      expect((rpc(sock, 'bdev_get_bdevs', '-b', 'XorLater') as unknown[]).length).to.equal(1);
      expect(rpc(sock, 'bdev_xor_delete', 'XorLater')).to.equal(true);
      expect(() => rpc(sock, 'bdev_xor_create', 'Malloc9', 'Bad', '256')).to.throw(/key/);
      saved = rpc(sock, 'save_config');
    } finally {
      t.child.kill('SIGINT');
    }
    expect(await t.exited).to.equal(0);

    // The saved config rebuilds Xor0 over the same file: the data reads back decoded.
    const bdevSection = (
      saved as { subsystems: { subsystem: string; config: { method: string }[] }[] }
    ).subsystems.find((s) => s.subsystem === 'bdev')!;
    expect(bdevSection.config.map((c) => c.method)).to.include.ordered.members([
      'bdev_aio_create',
      'bdev_xor_create',
    ]);
    writeFileSync(join(dir, 'saved.json'), JSON.stringify(saved));
    t = await tgt(['-r', sock, '--json', join(dir, 'saved.json')]);
    try {
      const again = qemuIo(url, 'read -P 0x3c 1M 64k', 'read -P 0xc3 2M 192k');
      expect(again).to.not.include('Pattern verification failed');
      expect(again).to.include('read 65536/65536 bytes at offset 1048576');
    } finally {
      t.child.kill('SIGINT');
    }
    expect(await t.exited).to.equal(0);
  });

  it('refuses a plugin that is not one, with a usage error', () => {
    writeFileSync(join(dir, 'not-a-plugin.js'), 'export default { reactorModules: 3 };');
    let err: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, [STORKIT, 'tgt', '--plugin', join(dir, 'not-a-plugin.js')], {
        stdio: 'pipe',
        encoding: 'utf8',
      });
    } catch (e) {
      err = e as { status: number; stderr: string };
    }
    expect(err?.status).to.equal(2);
    expect(err?.stderr).to.include('not-a-plugin.js: no name');
  });
});
