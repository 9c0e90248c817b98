import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { killLeftTargets, storkit as run, sock, startTgt } from './helpers.js';

const storkit = (...args: string[]) => run(args);

describe('cli: storkit tgt and storkit rpc', function () {
  this.timeout(60_000);
  afterEach(killLeftTargets);

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`serves the default config and stops in order on ${sig}, leaving no socket`, async () => {
      const path = sock();
      const vdir = mkdtempSync(join(tmpdir(), 'storkit-cli-vhost-'));
      const t = await startTgt(['-m', '0x3', '-r', path, '--vhost-dir', vdir, '--default-config']);
      expect(t.out()).to.include(
        `-chardev socket,id=c0,path=${join(vdir, 'vhost.0')} -device vhost-user-blk-pci,chardev=c0`,
      );
      expect(existsSync(join(vdir, 'vhost.0'))).to.equal(true);
      // The control socket and the vhost socket are this user's only (see rpc and vhost socket-access tests).
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      expect(statSync(join(vdir, 'vhost.0')).mode & 0o777).to.equal(0o600);
      expect(t.out()).to.match(/bdev: {6}Malloc0 {2}256 MiB/);
      expect(t.out()).to.include('iscsi-inq iscsi://127.0.0.1:3260/iqn.2016-06.io.storkit:disk1/0');
      expect(t.out()).to.include(
        "storkit nvme-identify -r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.storkit:cnode1'",
      );
      // The banner's nvme-perf goes to a core without a reactor; with -m 0x3 on two CPUs there is
      // none, and the banner says the tool shares one.
      if (availableParallelism() > 2) expect(t.out()).to.match(/-c 0x4\n/);
      else expect(t.out()).to.match(/-c 0x2\n\s+\(every core runs a reactor: the tool shares core 1/);
      const r = await storkit('rpc', '-s', path, 'bdev_get_bdevs', '-b', 'Malloc0');
      expect(r.code).to.equal(0);
      expect(JSON.parse(r.stdout)[0]).to.include({ name: 'Malloc0', num_blocks: 524288, block_size: 512 });
      t.p.kill(sig);
      expect(await t.exit).to.equal(0);
      expect(t.out()).to.match(/stopped \(exit 0\)/);
      expect(existsSync(path)).to.equal(false);
      expect(existsSync(join(vdir, 'vhost.0'))).to.equal(false);
      rmSync(vdir, { recursive: true, force: true });
    });
  }

  it('stops on spdk_kill_instance, and save_config reloads with --json', async () => {
    const path = sock();
    const t = await startTgt(['-r', path, '--default-config']);
    expect(
      (await storkit('rpc', '-s', path, 'bdev_null_create', 'Null0', '128', '4096')).stdout.trim(),
    ).to.equal('Null0');
    const saved = await storkit('rpc', '-s', path, 'save_config');
    expect((await storkit('rpc', '-s', path, 'spdk_kill_instance', 'SIGTERM')).code).to.equal(0);
    expect(await t.exit).to.equal(0);
    const file = join(tmpdir(), `storkit-cli-${process.pid}-saved.json`);
    writeFileSync(file, saved.stdout);
    const path2 = sock();
    const t2 = await startTgt(['-r', path2, '--json', file]);
    const again = await storkit('rpc', '-s', path2, 'save_config');
    expect(JSON.parse(again.stdout)).to.deep.equal(JSON.parse(saved.stdout));
    t2.p.kill('SIGTERM');
    expect(await t2.exit).to.equal(0);
  });

  it('explains a method from its schema, offline', async () => {
    // rpc.py's command line where rpc.py has the method, the schema's for storkit's own.
    const r = await storkit('rpc', 'bdev_malloc_create', '--help');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/usage: storkit rpc bdev_malloc_create \[-h\] .*total_size block_size/);
    const own = await storkit('rpc', 'storkit_get_memory', '--help');
    expect(own.stdout).to.match(/usage: storkit rpc storkit_get_memory/);
    expect((await storkit('rpc', '--list')).stdout).to.match(/^framework_get_reactors +/m);
  });

  it('reports RPC errors, unreachable targets and bad usage with exit codes', async () => {
    const path = sock();
    const t = await startTgt(['-r', path]);
    const bad = await storkit('rpc', '-s', path, 'bdev_malloc_create', '8', '100');
    // As rpc.py: the request, then the error response, on stdout; exit code 1.
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.match(/^request:\n[\s\S]*Got JSON-RPC error response\nresponse:\n/);
    const response = JSON.parse(bad.stdout.slice(bad.stdout.indexOf('response:\n{') + 10));
    expect(response).to.deep.include({ code: -32602 });
    expect(response.message).to.match(/block_size: 100 is below the minimum 512/);
    t.p.kill('SIGTERM');
    await t.exit;
    const down = await storkit('rpc', '-s', path, 'bdev_get_bdevs');
    expect(down.code).to.equal(1);
    expect(down.stdout).to.match(/^Error while connecting to /);
    expect((await storkit('rpc', '-s', path, '--bogus')).code).to.equal(2);
    expect((await storkit('tgt', '--json', '/nonexistent.json')).stderr).to.match(
      /cannot read \/nonexistent.json/,
    );
    expect((await storkit('tgt', '-m', '0x4', '-r', sock())).code).to.equal(1);
  });
});
