import { accessSync, constants, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';

import {
  ConfigError,
  DEFAULT_CONFIG,
  Logger,
  type LogLevel,
  parseConfig,
  type SpdkConfig,
  Target,
} from '@storkit/app';

import { type Command, UsageError } from '../command.js';
import { loadPlugin } from './plugins.js';
import { DEFAULT_RPC_SOCKET } from './rpc.js';
import { startLiveLine } from './tgt-live.js';

const USAGE = `usage: storkit tgt [-m MASK] [-r SOCKET] [--json FILE | --default-config] [--wait-for-rpc]
                   [--rpc-tcp HOST:PORT] [--vhost-dir DIR] [-L COMPONENT]... [--log-level LEVEL]
                   [--no-stats] [--slice-us N] [--ioat-model N] [--plugin FILE|PACKAGE]...

Runs the storkit target: one pinned reactor per core of MASK, every subsystem, and the
JSON-RPC server (SPDK's spdk_tgt, with SPDK's config format and method names).
  -m MASK           cores: 0x3, [0,1] (default 0x1)
  -r SOCKET         RPC Unix socket (default ${DEFAULT_RPC_SOCKET})
  --json FILE       load an SPDK-format JSON config at start (also -c, --config, as SPDK's)
  --default-config  the built-in default: a 256 MiB malloc bdev, Malloc0, exported over iSCSI
                    and NVMe/TCP (127.0.0.1:4420, nqn.2016-06.io.storkit:cnode1),
                    and to VMs as vhost-user-blk controller vhost.0 (socket in the vhost dir)
  --wait-for-rpc    hold initialization until framework_start_init (startup-only methods first)
  --rpc-tcp H:P     also serve RPC on a loopback TCP address
  --vhost-dir DIR   directory of vhost controllers' sockets (SPDK's -S; default: the RPC
                    socket's directory)
  -L COMPONENT      debug logs for a component: app, rpc, or a subsystem (bdev, bdev_nvme, nvmf,
                    iscsi, vhost_blk, vhost_scsi, ...: each of its RPCs); 'all' for every one
  --log-level L     error|warn|notice|info|debug (default notice)
  --no-stats        no live per-reactor load line
  --slice-us N      longest run of reactor iterations between yields to sockets (default 500)
  --ioat-model N    run a software model of an I/OAT DMA engine with N channels (no machine here
                    has the hardware); ioat_scan_accel_module finds them as it would real ones
  --plugin P        load a plugin (a file, or a package name; its default export a TargetPlugin of
                    @storkit/app/plugin): its bdev modules in every reactor, their methods served and
                    configurable from --json like the built-in ones (examples/custom-bdev)`;

const LEVELS: LogLevel[] = ['error', 'warn', 'notice', 'info', 'debug'];

export const tgt: Command = {
  name: 'tgt',
  summary: 'run the storage target (reactors, subsystems, JSON-RPC server)',
  usage: USAGE,
  async run(argv) {
    const pluginSpecs: string[] = [];
    let mask = '0x1';
    let rpcSocket = DEFAULT_RPC_SOCKET;
    let config: SpdkConfig | undefined;
    let waitForRpc = false;
    let rpcTcp: { host: string; port: number } | undefined;
    let stats = true;
    let loop: { sliceUs: number } | undefined;
    let vhostDir: string | undefined;
    let ioatModel: { channels: number } | undefined;
    const log = new Logger();
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      const val = () => {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        return v;
      };
      if (a === '-m') mask = val();
      else if (a === '-r') rpcSocket = val();
      // SPDK's app takes the config as -c, --config or --json (spdk_tgt -c file.json).
      else if (a === '--json' || a === '-c' || a === '--config') {
        const f = val();
        let text: string;
        try {
          text = readFileSync(f, 'utf8');
        } catch (e) {
          throw new UsageError(`cannot read ${f}: ${(e as Error).message}`);
        }
        try {
          config = parseConfig(text, f);
        } catch (e) {
          if (e instanceof ConfigError) throw new UsageError(e.message);
          throw e;
        }
      } else if (a === '--default-config') config = DEFAULT_CONFIG;
      else if (a === '--wait-for-rpc') waitForRpc = true;
      else if (a === '--rpc-tcp') {
        const m = /^(.+):(\d+)$/.exec(val());
        if (!m) throw new UsageError('--rpc-tcp takes HOST:PORT');
        rpcTcp = { host: m[1], port: Number(m[2]) };
      } else if (a === '--vhost-dir') vhostDir = val();
      else if (a === '-L') log.enable(val());
      else if (a === '--log-level') {
        const l = val() as LogLevel;
        if (!LEVELS.includes(l)) throw new UsageError(`--log-level takes ${LEVELS.join('|')}`);
        log.level = l;
      } else if (a === '--no-stats') stats = false;
      else if (a === '--slice-us') {
        const n = Number(val());
        if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new UsageError('--slice-us takes 1..100000');
        loop = { sliceUs: n };
      } else if (a === '--ioat-model') {
        const n = Number(val());
        if (!Number.isInteger(n) || n < 1 || n > 32)
          throw new UsageError('--ioat-model takes 1..32 channels');
        ioatModel = { channels: n };
      } else if (a === '--plugin') pluginSpecs.push(val());
      else throw new UsageError(`unknown option '${a}'`);
    }
    const plugins = [];
    for (const p of pluginSpecs) plugins.push(await loadPlugin(p));
    const target = new Target({
      mask,
      rpcSocket,
      rpcTcp,
      config,
      waitForRpc,
      log,
      vhostDir,
      loop,
      ioatModel,
      plugins,
    });
    try {
      await target.start();
    } catch (e) {
      process.stderr.write(`storkit tgt: ${(e as Error).message}\n`);
      const r = await target.done;
      return r.code || 1;
    }
    process.stdout.write(`${await banner(target, rpcSocket, waitForRpc)}\n`);
    const stopLive = stats && process.stdout.isTTY ? startLiveLine(target) : () => {};
    const r = await target.done;
    stopLive();
    if (r.leaked.length)
      process.stderr.write(`storkit tgt: threads left at shutdown:\n  ${r.leaked.join('\n  ')}\n`);
    if (r.error && r.code) process.stderr.write(`storkit tgt: ${r.error}\n`);
    process.stdout.write(`storkit tgt: stopped (exit ${r.code})\n`);
    return r.code;
  },
};

/**
 * How to type the storkit command in this shell: `storkit` when one is on PATH, else `npx
 * storkit` (a checkout after `npm ci` has it in node_modules/.bin only).
 */
function storkitCommand(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, 'storkit'), constants.X_OK);
      return 'storkit';
    } catch {
      // not in this directory
    }
  }
  return 'npx storkit';
}

async function banner(target: Target, sock: string, waiting: boolean): Promise<string> {
  const cmd = storkitCommand();
  const lines = [`storkit tgt: ${waiting ? 'waiting for framework_start_init' : 'running'}`];
  lines.push(`  RPC:       ${sock}    (${cmd} rpc -s ${sock} rpc_get_methods)`);
  if (target.app) {
    lines.push(`  reactors:  ${target.app.cores.map((c) => `core ${c}`).join(', ')}`);
    const r = await target.server.call('bdev_get_bdevs', {});
    const bdevs = (r.result as { name: string; num_blocks: number; block_size: number }[]) ?? [];
    for (const b of bdevs) {
      lines.push(
        `  bdev:      ${b.name}  ${((b.num_blocks * b.block_size) / 2 ** 20).toFixed(0)} MiB, ${b.block_size}-byte blocks`,
      );
    }
    lines.push(...(await iscsiBanner(target)));
    lines.push(...(await nvmfBanner(target, cmd)));
    lines.push(...(await vhostBanner(target)));
    lines.push(
      `  inspect:   ${cmd} rpc -s ${sock} bdev_get_bdevs    (or framework_get_reactors, save_config)`,
    );
  }
  lines.push(`  stop:      Ctrl-C, or ${cmd} rpc -s ${sock} spdk_kill_instance SIGTERM`);
  return lines.join('\n');
}

/** NVMe/TCP: each subsystem's listener with the storkit initiator commands that reach it. */
async function nvmfBanner(target: Target, cmd: string): Promise<string[]> {
  const subs = ((await target.server.call('nvmf_get_subsystems', {})).result ?? []) as {
    nqn: string;
    subtype: string;
    listen_addresses: { adrfam: string; traddr: string; trsvcid: string }[];
    namespaces?: { nsid: number; bdev_name: string }[];
  }[];
  const out: string[] = [];
  const host = await hostCore(target);
  for (const s of subs) {
    const a = s.listen_addresses[0];
    if (s.subtype !== 'NVMe' || !a || !s.namespaces?.length) continue;
    const trid = `trtype:TCP adrfam:${a.adrfam} traddr:${a.traddr} trsvcid:${a.trsvcid} subnqn:${s.nqn}`;
    const ns = s.namespaces.map((n) => `ns ${n.nsid} = ${n.bdev_name}`).join(', ');
    out.push(`  nvmf:      ${s.nqn} ${ns} on ${a.traddr}:${a.trsvcid}`);
    out.push(`             ${cmd} nvme-identify -r '${trid}'`);
    out.push(`             ${cmd} nvme-perf -r '${trid}' -q 128 -o 4096 -w randread -t 10 -c ${host.mask}`);
    if (host.shared)
      out.push(
        `             (every core runs a reactor: the tool shares core ${host.core} with one, and two pollers on a core take turns by scheduler slices; for figures start the target with -m 0x1)`,
      );
  }
  return out;
}

/**
 * A core for a polled host tool: the first without a reactor, or the last one (shared) when every
 * core runs one. Two busy pollers on one core take turns by scheduler slices, milliseconds each.
 */
async function hostCore(target: Target): Promise<{ core: number; mask: string; shared: boolean }> {
  const r = ((await target.server.call('framework_get_reactors', {})).result ?? {}) as {
    reactors?: { lw_threads: { cpumask: string }[] }[];
  };
  let used = 0n;
  for (const x of r.reactors ?? []) for (const t of x.lw_threads) used |= BigInt(t.cpumask);
  const n = availableParallelism();
  let core = 0;
  while (core < n && (used >> BigInt(core)) & 1n) core++;
  const shared = core >= n;
  if (shared) core = n - 1;
  return { core, mask: `0x${(1n << BigInt(core)).toString(16)}`, shared };
}

/** vhost: each controller's socket with the QEMU options that attach a VM to it. */
async function vhostBanner(target: Target): Promise<string[]> {
  const ctrls = ((await target.server.call('vhost_get_controllers', {})).result ?? []) as {
    ctrlr: string;
    socket: string;
    reactor_core?: number;
    backend_specific: { block?: { bdev: string }; scsi?: { luns: { bdev_name: string }[] }[] };
  }[];
  const out: string[] = [];
  for (const c of ctrls) {
    const blk = c.backend_specific.block;
    const what = blk ? `blk = ${blk.bdev}` : `scsi, ${c.backend_specific.scsi?.length ?? 0} target(s)`;
    const dev = blk ? 'vhost-user-blk-pci,chardev=c0,num-queues=2' : 'vhost-user-scsi-pci,chardev=c0';
    out.push(`  vhost:     ${c.ctrlr} (${what}) on ${c.socket}, core ${c.reactor_core ?? '?'}`);
    out.push(
      `             qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \\`,
    );
    out.push(`               -chardev socket,id=c0,path=${c.socket} -device ${dev} ...`);
  }
  return out;
}

/** iSCSI: each target node with the libiscsi commands that reach it. */
async function iscsiBanner(target: Target): Promise<string[]> {
  const nodes = ((await target.server.call('iscsi_get_target_nodes', {})).result ?? []) as {
    name: string;
    pg_ig_maps: { pg_tag: number }[];
    luns: { lun_id: number; bdev_name: string }[];
  }[];
  const groups = ((await target.server.call('iscsi_get_portal_groups', {})).result ?? []) as {
    tag: number;
    portals: { host: string; port: string }[];
  }[];
  const out: string[] = [];
  for (const n of nodes) {
    const p = groups.find((g) => g.tag === n.pg_ig_maps[0]?.pg_tag)?.portals[0];
    if (!p || n.luns.length === 0) continue;
    const portal = `iscsi://${p.host}:${p.port}`;
    const l = n.luns[0];
    out.push(`  iscsi:     ${n.name} LUN ${l.lun_id} = ${l.bdev_name}`);
    out.push(`             iscsi-ls ${portal}   iscsi-inq ${portal}/${n.name}/${l.lun_id}`);
  }
  return out;
}
