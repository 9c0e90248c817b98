// NVMe over PCIe against QEMU's NVMe controller (an independent implementation of the spec), in
// one TCG guest boot for every check: storkit setup (binding, refusal of a mounted filesystem,
// reset), examples/hello-nvme, SPDK's own PCIe driver side by side (identify compared field by
// field), the driver over VFIO and uio (test/guest/pcie-checks.sh, then the *.guest.js mocha specs:
// transfers, several qpairs and threads, DSM, reset, abort, SMART / Health async events, compare and
// fused compare-and-write, the Controller Memory Buffer), the whole path through the nvme bdev and
// storkit tgt to the kernel's NVMe/TCP initiator and to libiscsi over iSCSI, and a hot remove by
// QEMU's device_del, which this test sends through QEMU's monitor when the guest asks. (nvme-perf against spdk_nvme_perf in
// the same kind of guest: packages/nvme/bench/pcie-side-by-side.sh, not in CI.)
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const GUEST = fileURLToPath(new URL('../../test/guest/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const SPDK = join(ROOT, '../shared/peers/spdk/bin/spdk_nvme_identify');

function requirePeers(): void {
  execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  if (!existsSync('/bin/busybox')) throw new Error('busybox-static is missing (.ci/run installs it)');
  if (!readdirSync('/boot').some((f) => f.startsWith('vmlinuz-')))
    throw new Error('no kernel in /boot (linux-image-amd64)');
  if (!existsSync(SPDK)) throw new Error(`SPDK's tools are missing at ${SPDK}`);
}

/** Send one QMP command (after capabilities negotiation) and resolve with its reply. */
function qmp(path: string, cmd: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let buf = '';
    let step = 0;
    s.on('data', (d) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        if (step === 0 && l.includes('QMP')) {
          s.write('{"execute":"qmp_capabilities"}\n');
          step = 1;
        } else if (step === 1 && l.includes('"return"')) {
          s.write(`${JSON.stringify(cmd)}\n`);
          step = 2;
        } else if (step === 2 && (l.includes('"return"') || l.includes('"error"'))) {
          s.end();
          resolve(l);
        }
      }
    });
    s.on('error', reject);
  });
}

interface GuestRun {
  code: number | null;
  results: string[];
  log: string;
  qmpReplies: string[];
}

function boot(dir: string): { done: Promise<GuestRun>; q: ChildProcess } {
  const img = (n: string, mib: number): string => {
    const p = join(dir, `${n}.img`);
    writeFileSync(p, '');
    truncateSync(p, mib << 20);
    return p;
  };
  const qmpPath = join(dir, 'qmp.sock');
  // biome-ignore format: one controller per line
  const nvme = [
    // discard=unmap: Dataset Management really deallocates, so deallocated blocks read back as zeroes.
    `-drive file=${img('a1', 256)},if=none,id=a1,format=raw,discard=unmap -drive file=${img('a2', 64)},if=none,id=a2,format=raw,discard=unmap`,
    // cmb_size_mb: a 2 MiB Controller Memory Buffer in BAR2 (NVMe 1.4 scheme: CAP.CMBS, CMBMSC).
    '-device nvme,id=nvmea,serial=STORKITA,cmb_size_mb=2 -device nvme-ns,drive=a1,bus=nvmea,nsid=1',
    '-device nvme-ns,drive=a2,bus=nvmea,nsid=2,logical_block_size=4096,physical_block_size=4096',
    `-drive file=${img('u1', 64)},if=none,id=u1,format=raw -device nvme,serial=STORKITU,drive=u1`,
    '-device pcie-root-port,id=rp1,chassis=1,slot=1',
    `-drive file=${img('h1', 64)},if=none,id=h1,format=raw -device nvme,id=hot,bus=rp1,serial=STORKITH,drive=h1`,
  ].join(' ');
  const q = spawn(join(GUEST, 'pcie-guest.sh'), [join(dir, 'run'), 'bash', join(GUEST, 'pcie-checks.sh')], {
    cwd: ROOT,
    env: { ...process.env, QEMU_NVME: nvme, QMP: qmpPath, TIMEOUT: '1200' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a failed or timed-out run kills QEMU with it (after()).
    detached: true,
  });
  const run: GuestRun = { code: null, results: [], log: '', qmpReplies: [] };
  let pending = '';
  const onData = (d: Buffer): void => {
    const s = d.toString('latin1').replace(/\r/g, '');
    run.log += s;
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) {
      const r = l.indexOf('GUEST-RESULT: ');
      if (r >= 0) run.results.push(l.slice(r + 14));
      if (l.includes('GUEST-REQUEST: device_del hot')) {
        qmp(qmpPath, { execute: 'device_del', arguments: { id: 'hot' } }).then(
          (reply) => run.qmpReplies.push(reply),
          (e: Error) => run.qmpReplies.push(`error: ${e.message}`),
        );
      }
    }
  };
  q.stdout?.on('data', onData);
  q.stderr?.on('data', onData);
  const done = new Promise<GuestRun>((resolve) => {
    q.on('exit', (code) => {
      run.code = code;
      resolve(run);
    });
  });
  return { done, q };
}

function result(run: GuestRun, prefix: string): string {
  const r = run.results.find((x) => x.startsWith(prefix));
  if (r === undefined)
    throw new Error(
      `no '${prefix}' in the guest's report:\n${run.results.join('\n')}\n--- log tail ---\n${run.log.slice(-4000)}`,
    );
  return r;
}

describe('cli: NVMe over PCIe in a guest, against QEMU NVMe and SPDK (one boot)', function () {
  this.timeout(1_300_000);
  let dir = '';
  let run: GuestRun;
  let guest: ChildProcess | null = null;

  before(async () => {
    requirePeers();
    dir = mkdtempSync(join(tmpdir(), 'storkit-pcie-guest-'));
    const t0 = Date.now();
    const b = boot(dir);
    guest = b.q;
    run = await b.done;
    guest = null;
    // The whole console, for whoever reads a failure.
    writeFileSync(join(tmpdir(), 'storkit-pcie-guest-last.log'), run.log);
    process.stdout.write(
      `      (guest ran ${((Date.now() - t0) / 1000).toFixed(0)} s; console in ${join(tmpdir(), 'storkit-pcie-guest-last.log')})\n`,
    );
  });
  after(() => {
    if (guest?.pid !== undefined) {
      try {
        process.kill(-guest.pid, 'SIGKILL');
      } catch {}
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the guest ran to the end', () => {
    expect(result(run, 'END'), run.log.slice(-3000)).to.match(/^END rc=0/);
  });

  it('storkit setup refuses a mounted filesystem, binds vfio-pci and uio_pci_generic, and resets', () => {
    expect(result(run, 'setup-mounted')).to.equal(
      'setup-mounted rc=1 1 refusal(s) A=vfio-pci H=vfio-pci U=nvme',
    );
    expect(result(run, 'setup-uio')).to.equal('setup-uio rc=0 U=uio_pci_generic');
    expect(result(run, 'setup-reset')).to.equal('setup-reset rc=0 A=nvme U=nvme');
  });

  it("runs examples/hello-nvme on QEMU's controller through vfio-pci", () => {
    expect(result(run, 'hello')).to.equal('hello rc=0');
    const out = (run.log.match(/^hello: .*$/gm) ?? []).map((l) => l.slice(7));
    expect(out[0]).to.match(/^Attaching to trtype:PCIe traddr:0000:/);
    expect(out[1]).to.match(/^Attached: QEMU NVMe Ctrl \(serial STORKITA, firmware [^,]+, NVMe 1\.4\)$/);
    expect(out).to.include('  Namespace ID: 1 size: 256 MiB (524288 blocks of 512 bytes)');
    expect(out).to.include('  Namespace ID: 2 size: 64 MiB (16384 blocks of 4096 bytes)');
    expect(out.filter((l) => l === '  Hello world!')).to.have.length(2);
    expect(out).to.include('Detached');
    const times = run.log.match(/GUEST-TIME: .*/g) ?? [];
    process.stdout.write(`      guest timeline (uptime s): ${times.map((t) => t.slice(12)).join(', ')}\n`);
  });

  it("SPDK's spdk_nvme_identify runs on the same controller (compared field by field in the guest)", () => {
    expect(result(run, 'spdk-identify')).to.equal('spdk-identify rc=0');
    expect(run.log).to.match(/identify: \d+ fields equal, 0 differ, 0 not in SPDK's report/);
  });

  it('passes every driver, target and identify check in the guest (mocha there)', () => {
    const m = /(\d+) passing/.exec(run.log);
    const f = /(\d+) failing/.exec(run.log);
    const failures = run.log.slice(run.log.indexOf(' failing'));
    expect(f, f ? failures.slice(0, 6000) : '').to.equal(null);
    expect(m, run.log.slice(-3000)).to.not.equal(null);
    // The specs: 13 driver checks, 1 target path, 2 identify (none may vanish unnoticed).
    expect(Number(m![1])).to.equal(16);
    expect(result(run, 'mocha')).to.equal('mocha rc=0');
    expect(run.qmpReplies.length, 'device_del was sent').to.equal(1);
    expect(run.qmpReplies[0]).to.match(/"return"/);
  });
});
