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
    // accel_assign_opc's -o/-m are not marked required in rpc.py, which then sends nulls.
    if (m !== 'accel_assign_opc') lines.push([m, ...req, ...pos]);
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
});
