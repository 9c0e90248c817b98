// `storkit rpc` as SPDK's rpc.py (v24.01, ../shared/peers/spdk/bin/rpc.py): for the same command
// lines both send the same requests (compared through --dry-run, for every method of rpc.py that
// storkit has, with every flag), and rpc.py itself drives storkit tgt's socket (creating bdevs, an
// NVMe-oF subsystem, an iSCSI target, save_config, load_config), interchangeably with storkit rpc.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { freePort, main, run, sock, startTgt, stopTgt, storkit, type Tgt } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const RPCPY = join(ROOT, '../shared/peers/spdk/bin/rpc.py');
const rpcpy = (args: string[], input = '') => run('python3', [RPCPY, ...args], input);

interface PyArg {
  flags: string[];
  dest: string;
  action: string;
  type: string | null;
  choices: unknown[] | null;
  required: boolean;
}
const table = JSON.parse(readFileSync(join(ROOT, 'packages/cli/src/rpcpy/table.json'), 'utf8')) as Record<
  string,
  { args: PyArg[] }
>;

/** rpc.py's methods that call others from the client (they need a target, even with --dry-run). */
const CLIENT_SIDE = ['save_config', 'load_config', 'save_subsystem_config', 'load_subsystem_config'];

/** Values rpc.py's functions take apart (pairs, lists, sizes) or check, by argument name. */
const VALUES: Record<string, string> = {
  bdev_name_id_pairs: 'Malloc0:0 Malloc1:1',
  pg_ig_mappings: '1:2 3:4',
  portal_list: '127.0.0.1:3260 10.0.0.1:3261',
  initiator_list: 'ANY iqn.2016-06.io.spdk:host1',
  netmask_list: 'ANY 10.0.0.0/8',
  secrets: 'user:u1 secret:s1,user:u2 secret:s2 muser:m2 msecret:ms2',
  base_bdevs: 'Malloc0 Malloc1',
  new_size: '64',
  uuid: '6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a60',
  cpumask: '0x3',
  traddr: '127.0.0.1',
  adrfam: 'ipv4',
  trtype: 'tcp',
  trsvcid: '4420',
  nqn: 'nqn.2016-06.io.spdk:cnode1',
  subnqn: 'nqn.2016-06.io.spdk:cnode2',
};

/**
 * Command lines for every method: its positional and required arguments, then the same with every
 * optional flag too (store_true/store_false flags given, values by type).
 */
function commandLines(): string[][] {
  const value = (a: PyArg, i: number) =>
    a.choices
      ? String(a.choices[0])
      : (VALUES[a.dest] ??
        (a.type === 'int' ? String(4096 + i) : a.type === 'float' ? '1.5' : `v_${a.dest}`));
  const words = (args: PyArg[]) =>
    args.flatMap((a, i) =>
      a.action === 'Store' ? [a.flags[a.flags.length - 1], value(a, i)] : [a.flags[0]],
    );
  const lines: string[][] = [];
  for (const [m, all] of Object.entries(table)) {
    if (CLIENT_SIDE.includes(m)) continue;
    // An lvstore is named by -u UUID or -l NAME, exactly one (rpc.py's functions raise otherwise):
    // -l in every line.
    const byName = all.args.some((a) => a.dest === 'lvs_name' && a.flags.length);
    const d = byName
      ? {
          args: all.args
            .filter((a) => a.dest !== 'uuid' && a.dest !== 'lvs_uuid')
            .map((a) => (a.dest === 'lvs_name' ? { ...a, required: true } : a)),
        }
      : all;
    const pos = d.args.filter((a) => !a.flags.length).map(value);
    const req = words(d.args.filter((a) => a.flags.length && a.required));
    // accel_assign_opc's -o/-m are not marked required in rpc.py, which then sends nulls: so
    // does storkit rpc (and the target refuses them, as SPDK's does).
    lines.push([m, ...req, ...pos]);
    // bdev_set_options' -e and -d exclude each other: -d gets a line of its own.
    const optional = d.args.filter(
      (a) => a.flags.length && !a.required && !(m === 'bdev_set_options' && a.action === 'StoreFalse'),
    );
    if (optional.length) lines.push([m, ...req, ...words(optional), ...pos]);
  }
  return lines;
}

/** Hand-written lines: SPDK's documented recipes and the spellings rpc.py also takes. */
const RECIPES = [
  'bdev_malloc_create 32 512',
  'bdev_malloc_create -b Malloc0 64 4096',
  'bdev_null_create Null0 128 4096',
  'bdev_set_options -d',
  'nvmf_create_transport -t TCP',
  'nvmf_create_subsystem nqn.2016-06.io.spdk:cnode1 -a -s SPDK00000000000001',
  'nvmf_create_subsystem nqn.2016-06.io.spdk:cnode1 --min_cntlid 5 --max_cntlid=9',
  'nvmf_subsystem_add_ns nqn.2016-06.io.spdk:cnode1 Malloc0',
  'nvmf_subsystem_add_listener nqn.2016-06.io.spdk:cnode1 -t tcp -a 127.0.0.1 -s 4431 -f ipv4',
  'iscsi_create_portal_group 1 127.0.0.1:3270',
  'iscsi_create_initiator_group 2 ANY 127.0.0.1/32',
  'iscsi_create_target_node disk1 disk1_alias Malloc0:0 1:2 64 -d',
  'vhost_create_blk_controller --cpumask 0x1 --packed_ring vhost.0 Malloc0',
  'bdev_get_bdevs',
  'spdk_get_version',
].map((l) => l.split(' '));

/** The "Request:" blocks of a --dry-run batch (rpc.py writes warnings between them). */
function requests(out: string): unknown[] {
  return out
    .split('Request:\n')
    .slice(1)
    .map((b) => JSON.parse(b.slice(0, b.indexOf('\n}') + 2)));
}

describe("storkit rpc as SPDK's rpc.py", function () {
  this.timeout(120_000);
  before(() => {
    if (!existsSync(RPCPY)) throw new Error(`SPDK's rpc.py is missing at ${RPCPY}`);
  });

  it('sends the request rpc.py sends for the same command line (every method storkit has, every flag)', async () => {
    const lines = [...RECIPES, ...commandLines()];
    // One batch each, as rpc.py reads scripts from stdin (shlex quoting).
    const quote = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w}'`);
    const script = `${lines.map((l) => l.map(quote).join(' ')).join('\n')}\n`;
    const py = await rpcpy(['--dry-run'], script);
    expect(py.code, py.stderr).to.equal(0);
    const sk = await storkit(['rpc', '--dry-run'], script);
    expect(sk.code, sk.stderr).to.equal(0);
    const a = requests(py.stdout);
    const b = requests(sk.stdout);
    expect(a.length).to.equal(lines.length);
    expect(b.length).to.equal(lines.length);
    // Key order is not part of JSON-RPC; deep equality is the check, line by line.
    for (let i = 0; i < lines.length; i++) expect(b[i], lines[i].join(' ')).to.deep.equal(a[i]);
    // The check can fail: the size in MiB is a block count in the request, not 32 blocks.
    expect(a[0]).to.deep.equal({
      method: 'bdev_malloc_create',
      params: { num_blocks: 65536, block_size: 512 },
    });
  });

  it("table.json is rpc.py's interface for every method storkit has now (scripts/rpcpy-table.sh)", async () => {
    // A method added to storkit that rpc.py has, missing here, would take storkit's schema
    // arguments instead of rpc.py's: regenerate the table with the script.
    const { methodCatalog } = await import('@storkit/app');
    const dir = mkdtempSync(join(tmpdir(), 'storkit-rpcpy-table-'));
    try {
      writeFileSync(
        join(dir, 'sitecustomize.py'),
        readFileSync(join(ROOT, 'packages/cli/scripts/rpcpy-sitecustomize.py')),
      );
      const p = spawn('python3', [RPCPY, ...methodCatalog().map((m) => m.name)], {
        env: { ...process.env, PYTHONPATH: dir },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      expect(await new Promise((r) => p.on('close', r))).to.equal(0);
      expect(Object.keys(table).sort(), 'packages/cli/scripts/rpcpy-table.sh').to.deep.equal(
        Object.keys(JSON.parse(out)).sort(),
      );
      expect(table).to.deep.equal(JSON.parse(out));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what rpc.py refuses, with argparse exit code 2', async () => {
    const bad = await storkit(['rpc', '--dry-run', 'bdev_malloc_create', '32', 'x']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/argument block_size: invalid int value: 'x'/);
    expect((await rpcpy(['--dry-run', 'bdev_malloc_create', '32', 'x'])).code).to.equal(2);
    const missing = await storkit([
      'rpc',
      '--dry-run',
      'nvmf_subsystem_add_listener',
      'nqn.2016-06.io.spdk:c1',
    ]);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.match(/required: -t\/--trtype, -a\/--traddr/);
  });

  it('--list | head: a reader that goes away ends it quietly', async () => {
    // The reader closes its end before storkit writes: the write fails with EPIPE.
    const p = spawn(process.execPath, [main, 'rpc', '--list'], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.destroy();
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    expect(stderr).to.equal('');
    expect(code).to.equal(0);
    const shell = await run('bash', [
      '-c',
      `set -o pipefail; "${process.execPath}" "${main}" rpc --list | head -1`,
    ]);
    expect(shell.stderr).to.equal('');
    expect(shell.code).to.equal(0);
    expect(shell.stdout).to.match(/^accel_\w+ +\S/);
  });

  describe('against storkit tgt', () => {
    let dir: string;
    const targets: Tgt[] = [];
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'storkit-rpcpy-'));
    });
    after(async () => {
      for (const t of targets) await stopTgt(t);
      rmSync(dir, { recursive: true, force: true });
    });
    const start = async (args: string[] = []) => {
      const path = sock();
      targets.push(await startTgt(['-m', '0x1', '-r', path, '--vhost-dir', dir, ...args]));
      return path;
    };

    it("rpc.py drives storkit tgt's socket; storkit rpc reads back what it made, in rpc.py's output", async () => {
      const path = await start();
      const py = async (...args: string[]) => {
        const r = await rpcpy(['-s', path, ...args]);
        expect(r.code, `rpc.py ${args.join(' ')}:\n${r.stdout}${r.stderr}`).to.equal(0);
        return r.stdout;
      };
      const sk = async (...args: string[]) => {
        const r = await storkit(['rpc', '-s', path, ...args]);
        expect(r.code, `storkit rpc ${args.join(' ')}:\n${r.stdout}${r.stderr}`).to.equal(0);
        return r.stdout;
      };
      // The case: 32 MiB of 512-byte blocks from both.
      expect(await sk('bdev_malloc_create', '32', '512')).to.equal('Malloc0\n');
      expect(await py('bdev_malloc_create', '-b', 'M1', '16', '4096')).to.equal('M1\n');
      const bdevs = JSON.parse(await sk('bdev_get_bdevs'));
      expect(bdevs.map((b: { name: string; num_blocks: number }) => [b.name, b.num_blocks])).to.deep.equal([
        ['Malloc0', 65536],
        ['M1', 4096],
      ]);
      const port = await freePort();
      const nqn = 'nqn.2016-06.io.spdk:cnode1';
      await py('nvmf_create_transport', '-t', 'TCP');
      await py('nvmf_create_subsystem', nqn, '-a', '-s', 'SPDK00000000000001');
      await py('nvmf_subsystem_add_ns', nqn, 'M1');
      await py(
        'nvmf_subsystem_add_listener',
        nqn,
        '-t',
        'tcp',
        '-a',
        '127.0.0.1',
        '-s',
        String(port),
        '-f',
        'ipv4',
      );
      const sub = JSON.parse(await py('nvmf_get_subsystems', nqn));
      expect(sub).to.have.length(1);
      expect(sub[0]).to.deep.include({ nqn, serial_number: 'SPDK00000000000001', allow_any_host: true });
      expect(sub[0].namespaces[0]).to.include({ nsid: 1, bdev_name: 'M1' });
      await py('iscsi_create_portal_group', '1', `127.0.0.1:${await freePort()}`);
      await py('iscsi_create_initiator_group', '2', 'ANY', '127.0.0.1/32');
      await py('iscsi_create_target_node', 'disk1', 'disk1_alias', 'Malloc0:0', '1:2', '64', '-d');
      await py('vhost_create_blk_controller', 'vhost.0', 'M1');
      // -v: the request and the response on stderr, as rpc.py's logger writes them.
      const v = await storkit(['rpc', '-s', path, '-v', 'bdev_get_bdevs', '-b', 'M1']);
      expect(v.stderr).to.match(
        /^INFO: Requests:\n\{\n {2}"jsonrpc": "2.0",\n {2}"method": "bdev_get_bdevs"/,
      );
      expect(v.stderr).to.match(/INFO: response:\n\{\n {2}"jsonrpc": "2.0",\n {2}"id": 1,\n {2}"result": \[/);
      expect(JSON.parse(v.stdout)[0].name).to.equal('M1');
      // save_config: the same document from both clients.
      const saved = await py('save_config');
      expect(JSON.parse(await sk('save_config'))).to.deep.equal(JSON.parse(saved));
      const cfg = JSON.parse(saved) as { subsystems: { subsystem: string; config: { method: string }[] }[] };
      const methods = cfg.subsystems.flatMap((s) => (s.config ?? []).map((e) => e.method));
      expect(methods).to.include.members([
        'bdev_malloc_create',
        'nvmf_create_subsystem',
        'nvmf_subsystem_add_listener',
        'iscsi_create_target_node',
        'vhost_create_blk_controller',
      ]);
      writeFileSync(join(dir, 'saved.json'), saved);
      // The next test loads this config: its listeners' ports and vhost socket must be free.
      expect(await stopTgt(targets.pop() as Tgt)).to.equal(0);
    });

    it('load_config (file and stdin), load_subsystem_config and a batch of commands from stdin', async () => {
      const saved = readFileSync(join(dir, 'saved.json'), 'utf8');
      const cfg = JSON.parse(saved) as { subsystems: { subsystem: string; config: unknown[] }[] };
      // Loaded with storkit rpc from stdin on one target, with rpc.py from a file on another: both
      // save what the first one saved.
      const a = await start();
      const la = await storkit(['rpc', '-s', a, 'load_config'], saved);
      expect(la.code, la.stdout + la.stderr).to.equal(0);
      expect(JSON.parse((await storkit(['rpc', '-s', a, 'save_config'])).stdout)).to.deep.equal(cfg);
      // rpc.py's load_config against storkit, once target a has gone (its listeners' ports).
      expect(await stopTgt(targets.pop() as Tgt)).to.equal(0);
      const b = await start();
      const lb = await rpcpy(['-s', b, 'load_config', '-j', join(dir, 'saved.json')]);
      expect(lb.code, lb.stdout + lb.stderr).to.equal(0);
      expect(JSON.parse((await storkit(['rpc', '-s', b, 'save_config'])).stdout)).to.deep.equal(cfg);
      expect(await stopTgt(targets.pop() as Tgt)).to.equal(0);
      // load_subsystem_config from a file (with SPDK's comments, which storkit takes and rpc.py's
      // json.load does not) and from stdin, on a third target; -j may also be the JSON itself.
      const c = await start();
      const bdev = cfg.subsystems.find((s) => s.subsystem === 'bdev');
      writeFileSync(join(dir, 'bdev.json'), `/* the bdev subsystem */\n${JSON.stringify(bdev)}`);
      const lc = await storkit(['rpc', '-s', c, 'load_subsystem_config', '-j', join(dir, 'bdev.json')]);
      expect(lc.code, lc.stdout + lc.stderr).to.equal(0);
      const nvmf = cfg.subsystems.find((s) => s.subsystem === 'nvmf');
      const ln = await storkit(['rpc', '-s', c, 'load_subsystem_config'], JSON.stringify(nvmf));
      expect(ln.code, ln.stdout + ln.stderr).to.equal(0);
      const savedC = JSON.parse(
        (await storkit(['rpc', '-s', c, 'save_subsystem_config', '-n', 'nvmf'])).stdout,
      );
      expect(savedC).to.deep.equal(nvmf);
      const inline = JSON.stringify({
        subsystem: 'bdev',
        config: [{ method: 'bdev_null_create', params: { name: 'Inline0', num_blocks: 8, block_size: 512 } }],
      });
      expect((await storkit(['rpc', '-s', c, 'load_subsystem_config', '-j', inline])).code).to.equal(0);
      expect((await storkit(['rpc', '-s', c, 'bdev_null_delete', 'Inline0'])).code).to.equal(0);
      // A batch: one command per line, comments skipped, each result printed as rpc.py prints it.
      const batch = await storkit(
        ['rpc', '-s', c],
        '# a comment\nbdev_null_create N0 8 512\nbdev_get_bdevs -b N0\nbdev_null_delete N0\n',
      );
      expect(batch.code, batch.stdout + batch.stderr).to.equal(0);
      expect(batch.stdout.split('\n')[0]).to.equal('N0');
      expect(JSON.parse(batch.stdout.slice(3))[0]).to.include({
        name: 'N0',
        num_blocks: 16384,
        block_size: 512,
      });
      // A failing line stops the batch: rpc.py's "Exception:" report and exit code 1.
      const failing = await storkit(
        ['rpc', '-s', c],
        'bdev_null_create N1 8 512\nbdev_null_delete nope\nbdev_null_delete N1\n',
      );
      expect(failing.code).to.equal(1);
      expect(failing.stdout).to.match(
        /^N1\nException:\nbdev_null_create N1 8 512\nbdev_null_delete nope <<<\nrequest:/,
      );
      const left = JSON.parse((await storkit(['rpc', '-s', c, 'bdev_get_bdevs'])).stdout);
      expect(left.map((x: { name: string }) => x.name)).to.include('N1');
    });
  });
  // Parameters rpc.py sends only when their flag is given, each acted on as SPDK acts on it.
  describe("rpc.py's optional parameters and modes against storkit tgt", () => {
    let dir: string;
    const targets: Tgt[] = [];
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'storkit-rpcpy-opt-'));
    });
    after(async () => {
      for (const t of targets) await stopTgt(t);
      rmSync(dir, { recursive: true, force: true });
    });
    const start = async (args: string[]) => {
      const path = sock();
      targets.push(await startTgt(['-r', path, '--vhost-dir', dir, ...args]));
      return path;
    };
    /** rpc.py against `path`: its exit code and output, parsed as JSON when it is. */
    const py = async (path: string, ...args: string[]) => {
      const r = await rpcpy(['-s', path, ...args]);
      let json: unknown = null;
      try {
        json = JSON.parse(r.stdout);
      } catch {}
      return { ...r, json, text: `rpc.py ${args.join(' ')}:\n${r.stdout}${r.stderr}` };
    };
    /** The JSON-RPC error rpc.py printed for a failed call. */
    const rpcError = (out: string) => JSON.parse(out.slice(out.lastIndexOf('response:\n') + 10));

    it('bdev_get_iostat --per-channel; bdev_nvme_attach_controller -i/-p (source address, SO_PRIORITY); bdev_nvme_detach_controller by path', async () => {
      const path = await start(['-m', '0x3']);
      const ok = async (...args: string[]) => {
        const r = await py(path, ...args);
        expect(r.code, r.text).to.equal(0);
        return r;
      };
      const port = String(await freePort());
      const c1 = 'nqn.2016-06.io.spdk:opt1';
      const c2 = 'nqn.2016-06.io.spdk:opt2';
      await ok('bdev_malloc_create', '-b', 'OptM0', '8', '512');
      await ok('nvmf_create_transport', '-t', 'TCP');
      await ok('nvmf_create_subsystem', c1, '-a');
      await ok('nvmf_subsystem_add_ns', c1, 'OptM0');
      await ok('nvmf_subsystem_add_listener', c1, '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-f', 'ipv4');
      // storkit's host to its own target, from 127.0.0.2 (loopback: any 127/8 address is local),
      // every connection at SO_PRIORITY 3.
      const attach = [
        'bdev_nvme_attach_controller',
        '-b',
        'OptN',
        '-t',
        'tcp',
        '-a',
        '127.0.0.1',
        '-s',
        port,
      ];
      attach.push('-n', c1, '-f', 'ipv4', '-i', '127.0.0.2', '-p', '3');
      expect((await ok(...attach)).stdout).to.equal('OptNn1\n');
      // A fixed source port cannot serve a controller's several connections: refused.
      const withPort = await py(path, ...attach.map((w) => (w === 'OptN' ? 'OptP' : w)), '-c', '40001');
      expect(withPort.code).to.equal(1);
      expect(rpcError(withPort.stdout).code).to.equal(-32602);
      // Exported again: the second subsystem's poll groups open a channel of OptNn1 on each
      // reactor, each an I/O connection of its own.
      await ok('nvmf_create_subsystem', c2, '-a');
      await ok('nvmf_subsystem_add_ns', c2, 'OptNn1');
      let qpairs: { peer_address: { traddr: string } }[] = [];
      for (let i = 0; i < 100 && qpairs.length < 3; i++) {
        qpairs = (await ok('nvmf_subsystem_get_qpairs', c1)).json as typeof qpairs;
        if (qpairs.length < 3) await new Promise((r) => setTimeout(r, 100));
      }
      expect(qpairs.map((q) => q.peer_address.traddr)).to.deep.equal(['127.0.0.2', '127.0.0.2', '127.0.0.2']);
      // SO_PRIORITY as the kernel has it (ss shows a socket's priority as its class_id).
      const ss = await run('ss', ['-tnH', '--tos', 'state', 'established', `( dport = :${port} )`]);
      const rows = ss.stdout.trim().split('\n');
      expect(rows, ss.stdout).to.have.length(3);
      for (const r of rows) expect(r, ss.stdout).to.match(/ 127\.0\.0\.2:\d+ .*class_id:0x3\b/);
      const ctrl = (await ok('bdev_nvme_get_controllers', '-n', 'OptN')).json as {
        ctrlrs: { host: { addr: string; svcid: string } }[];
      }[];
      expect(ctrl[0].ctrlrs[0].host).to.include({ addr: '127.0.0.2', svcid: '' });

      // Per channel: one entry a channel, each on a thread thread_get_stats lists.
      const per = (await ok('bdev_get_iostat', '-b', 'OptNn1', '--per-channel')).json as {
        name: string;
        channels: { thread_id: number; num_read_ops: number }[];
      };
      expect(per.name).to.equal('OptNn1');
      expect(per.channels).to.have.length(2);
      const threads = ((await ok('thread_get_stats')).json as { threads: { id: number }[] }).threads.map(
        (t) => t.id,
      );
      for (const c of per.channels) expect(threads).to.include(c.thread_id);
      expect(new Set(per.channels.map((c) => c.thread_id)).size).to.equal(2);
      // Without a bdev name: EINVAL, as SPDK answers.
      const noName = await py(path, 'bdev_get_iostat', '-c');
      expect(noName.code).to.equal(1);
      expect(rpcError(noName.stdout).code).to.equal(-22);

      // Detach by path: a field that does not match the controller's path removes nothing
      // (ENXIO, SPDK's answer); the full path detaches it.
      for (const wrong of [
        ['-i', '127.0.0.9'],
        ['-c', '1'],
        ['-s', '1'],
        ['-a', '127.0.0.3'],
        ['-n', c2],
      ]) {
        const r = await py(path, 'bdev_nvme_detach_controller', 'OptN', ...wrong);
        expect(r.code, r.text).to.equal(1);
        expect(rpcError(r.stdout).code, r.text).to.equal(-6);
      }
      expect(((await ok('bdev_nvme_get_controllers')).json as unknown[]).length).to.equal(1);
      await ok('nvmf_delete_subsystem', c2);
      await ok(
        'bdev_nvme_detach_controller',
        'OptN',
        ...['-t', 'TCP', '-a', '127.0.0.1', '-s', port, '-f', 'IPv4', '-n', c1, '-i', '127.0.0.2'],
      );
      expect((await ok('bdev_nvme_get_controllers')).json).to.deep.equal([]);
    });

    it('--server: whole command lines from stdin, each on its own connection and ended by **STATUS=0|1, as rpc.py --server', async () => {
      const path = await start(['-m', '0x1']);
      // As a shell coprocess drives it: each line written only once the previous one is answered.
      const p = spawn(process.execPath, [main, 'rpc', '--server'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let buf = '';
      let stderr = '';
      let wake: (() => void) | null = null;
      p.stdout.on('data', (d) => {
        buf += d;
        wake?.();
      });
      p.stderr.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
      const ask = async (line: string) => {
        p.stdin.write(`${line}\n`);
        for (;;) {
          const m = /\*\*STATUS=(\d)\n/.exec(buf);
          if (m) {
            const answer = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            return { status: Number(m[1]), answer };
          }
          await new Promise<void>((r) => (wake = r));
        }
      };
      try {
        const lines = [
          `-s ${path} bdev_malloc_create -b SrvM0 8 512`,
          `-s ${path} bdev_get_bdevs -b SrvM0`,
          `-s ${path} bdev_malloc_delete nope`,
          `-s ${path} bdev_malloc_create 32 x`,
          `-s ${path} -v bdev_malloc_delete SrvM0`,
          `-s ${path}.missing spdk_get_version`,
        ];
        const got = [];
        for (const l of lines) got.push(await ask(l));
        expect(got.map((g) => g.status)).to.deep.equal([0, 0, 1, 1, 0, 1]);
        expect(got[0].answer).to.equal('SrvM0\n');
        expect(JSON.parse(got[1].answer)[0]).to.include({ name: 'SrvM0', num_blocks: 16384 });
        expect(got[2].answer).to.match(/^request:\n[\s\S]*"req_id": 1\n\}\nGot JSON-RPC error response/);
        expect(stderr).to.match(/argument block_size: invalid int value: 'x'/);
        expect(got[5].answer).to.match(/^Error while connecting to /);
        p.stdin.end();
        expect(await closed).to.equal(0);
      } finally {
        p.kill();
      }
      // rpc.py --server answers the same lines with the same statuses and results.
      const script = [
        `-s ${path} bdev_malloc_create -b SrvM1 8 512`,
        `-s ${path} bdev_malloc_delete nope`,
        `-s ${path} bdev_malloc_create 32 x`,
        `-s ${path} bdev_malloc_delete SrvM1`,
        `-s ${path} bdev_get_bdevs -b SrvM1`,
      ].join('\n');
      const a = await rpcpy(['--server'], `${script}\n`);
      const b = await storkit(['rpc', '--server'], `${script}\n`);
      expect(a.code).to.equal(0);
      expect(b.code).to.equal(0);
      expect(b.stdout).to.equal(a.stdout);
      expect(a.stdout.match(/\*\*STATUS=\d/g)).to.deep.equal([
        '**STATUS=0',
        '**STATUS=1',
        '**STATUS=1',
        '**STATUS=0',
        '**STATUS=1',
      ]);
    });

    it('--plugin: a module whose rpcCommands run in the client and call the target (rpc.py plugin subcommands), also in --server', async () => {
      const path = await start(['-m', '0x1']);
      const plugin = join(dir, 'pair-plugin.mjs');
      writeFileSync(
        plugin,
        `export default {
  name: 'pair',
  rpcCommands: [{
    name: 'bdev_malloc_pair',
    description: 'two malloc bdevs of SIZE MiB: NAME_a and NAME_b',
    async run(argv, call) {
      const [name, mib] = argv;
      if (!name || !mib) throw new Error('usage: bdev_malloc_pair NAME SIZE_MIB');
      const out = [];
      for (const s of ['a', 'b'])
        out.push(await call('bdev_malloc_create', { name: name + '_' + s, num_blocks: Number(mib) * 2048, block_size: 512 }));
      return out;
    },
  }],
};
`,
      );
      const list = await storkit(['rpc', '--plugin', plugin, '--list']);
      expect(list.stdout).to.match(/^bdev_malloc_pair +two malloc bdevs .*\(client-side\)$/m);
      const r = await storkit(['rpc', '-s', path, '--plugin', plugin, 'bdev_malloc_pair', 'Pair', '4']);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.deep.equal(['Pair_a', 'Pair_b']);
      const bdevs = JSON.parse((await storkit(['rpc', '-s', path, 'bdev_get_bdevs'])).stdout) as {
        name: string;
        num_blocks: number;
      }[];
      expect(bdevs.map((b) => [b.name, b.num_blocks])).to.deep.include.members([
        ['Pair_a', 8192],
        ['Pair_b', 8192],
      ]);
      // Its second call fails (the name exists): rpc.py's failure report, exit code 1.
      const again = await storkit(['rpc', '-s', path, '--plugin', plugin, 'bdev_malloc_pair', 'Pair', '4']);
      expect(again.code).to.equal(1);
      expect(again.stdout).to.match(/^request:\n[\s\S]*"name": "Pair_a"[\s\S]*Got JSON-RPC error response/);
      // Without --plugin the command is unknown; with it on the --server line, known to every line.
      expect((await storkit(['rpc', '-s', path, 'bdev_malloc_pair', 'X', '1'])).code).to.equal(2);
      const srv = await storkit(
        ['rpc', '--plugin', plugin, '--server'],
        `-s ${path} bdev_malloc_pair Srv 1\n-s ${path} bdev_malloc_delete Srv_a\n-s ${path} bdev_malloc_delete Srv_b\n`,
      );
      expect(srv.stdout).to.equal('[\n  "Srv_a",\n  "Srv_b"\n]\n**STATUS=0\n**STATUS=0\n**STATUS=0\n');
    });

    it('--go-client is refused with the reason (no Go client library in storkit)', async () => {
      const r = await storkit(['rpc', '--go-client', 'spdk_get_version']);
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/--go-client: .*libspdk_gorpc/);
    });

    it('iscsi_set_options --auth-file: its groups are made at framework init and CHAP logins use them; accel_assign_opc without -o/-m is refused', async () => {
      const path = await start(['-m', '0x1', '--wait-for-rpc']);
      // rpc.py sends nulls without -o/-m; the target refuses them (SPDK: "spdk_json_decode_object
      // failed"), and nothing is assigned.
      const none = await py(path, 'accel_assign_opc');
      expect(none.code, none.text).to.equal(1);
      expect(none.stdout).to.match(/"opname": null,\n {2}"module": null/);
      const file = join(dir, 'auth.conf');
      writeFileSync(
        file,
        [
          '# SPDK CHAP secret file',
          '[AuthGroup1]',
          '  Comment "Auth Group1"',
          '  Auth "fileuser" "filesecret12"',
          '  Auth user2 secret2 "mutual user" msecret2',
          '',
          '[Other]',
          '  Auth not-a-group x',
          '[AuthGroup7]',
          '  Auth u7 \\',
          '    s7',
          '',
        ].join('\n'),
      );
      let r = await py(path, 'iscsi_set_options', '--auth-file', file);
      expect(r.code, r.text).to.equal(0);
      r = await py(path, 'framework_start_init');
      expect(r.code, r.text).to.equal(0);
      expect((await py(path, 'iscsi_get_auth_groups')).json).to.deep.equal([
        {
          tag: 1,
          secrets: [
            { user: 'fileuser', secret: 'filesecret12' },
            { user: 'user2', secret: 'secret2', muser: 'mutual user', msecret: 'msecret2' },
          ],
        },
        { tag: 7, secrets: [{ user: 'u7', secret: 's7' }] },
      ]);
      expect(((await py(path, 'iscsi_get_options')).json as { auth_file: string }).auth_file).to.equal(file);
      // save_config: auth_file, and not the groups it makes (loading both would make them twice).
      const saved = (await py(path, 'save_subsystem_config', '-n', 'iscsi')).json as {
        config: { method: string; params: Record<string, unknown> }[];
      };
      expect(saved.config.find((e) => e.method === 'iscsi_set_options')?.params.auth_file).to.equal(file);
      expect(saved.config.map((e) => e.method)).to.not.include('iscsi_create_auth_group');
      // A target node that requires CHAP from group 1: libiscsi logs in with the file's secret.
      const port = String(await freePort());
      for (const args of [
        ['bdev_malloc_create', '-b', 'AuthM0', '8', '512'],
        ['iscsi_create_portal_group', '1', `127.0.0.1:${port}`],
        ['iscsi_create_initiator_group', '2', 'ANY', '127.0.0.1/32'],
        ['iscsi_create_target_node', 'authdisk', 'authdisk', 'AuthM0:0', '1:2', '64', '-r', '-g', '1'],
      ]) {
        r = await py(path, ...args);
        expect(r.code, r.text).to.equal(0);
      }
      const inq = (cred: string) =>
        run('iscsi-inq', [`iscsi://${cred}@127.0.0.1:${port}/iqn.2016-06.io.spdk:authdisk/0`]);
      const good = await inq('fileuser%filesecret12');
      expect(good.code, good.stdout + good.stderr).to.equal(0);
      expect(good.stdout).to.match(/Peripheral Device Type/);
      expect((await inq('fileuser%wrongsecret1')).code).to.not.equal(0);
    });
  });
});
