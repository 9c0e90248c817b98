// QEMU (TCG) guests of the app's tests: this machine's Debian kernel (linux-image-amd64) with a
// busybox initramfs (guest/mkinitrd.sh) that loads the modules a test names and runs a workload
// script from guest/. A guest prints GUEST-RESULT lines on its serial console; the host test reads
// them as they come (to act on the guest's cue, e.g. restart the target) and once it powered off.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The guest workloads and the initramfs builder (sources, not compiled). */
export const GUEST_DIR = fileURLToPath(new URL('../../test/guest/', import.meta.url));
const MKINITRD = `${GUEST_DIR}mkinitrd.sh`;

export function kernel(): string | null {
  if (!existsSync('/boot')) return null;
  const k = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .pop();
  return k === undefined ? null : `/boot/${k}`;
}

/** What is missing to boot a guest (.ci/run installs it), or null. */
export function guestMissing(bins: string[] = []): string | null {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 (package qemu-system-x86)';
  }
  if (kernel() === null) return 'a kernel in /boot (package linux-image-amd64)';
  if (!existsSync('/bin/busybox')) return '/bin/busybox (package busybox-static)';
  for (const b of bins) if (!existsSync(b)) return b;
  return null;
}

/** The absolute path of a program on PATH (to copy into a guest). */
export function which(name: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed (.ci/run installs it)`);
  }
}

/** An initramfs for `workload` (a file of guest/) with `mods` and `bins`; built once per content. */
export function initrd(workload: string, mods: string[], bins: string[] = []): string {
  const src = `${GUEST_DIR}${workload}`;
  const key = createHash('sha256')
    .update(readFileSync(src))
    .update(readFileSync(MKINITRD))
    .update(mods.join(' '))
    .update(bins.join(' '))
    .digest('hex')
    .slice(0, 16);
  const out = `/tmp/storkit-app-${workload}-${key}.cpio.gz`;
  if (!existsSync(out))
    execFileSync(MKINITRD, [out, src], {
      stdio: 'inherit',
      env: { ...process.env, MODS: mods.join(' '), BINS: bins.join(' ') },
    });
  return out;
}

export interface GuestRun {
  code: number | null;
  /** The GUEST-RESULT lines, without the prefix. */
  results: string[];
  log: string;
}

export interface BootOptions {
  initrd: string;
  /** Kernel command line words after the console ones (the workload's key=value parameters). */
  append?: string;
  /** QEMU arguments (devices, network). */
  qemu: string[];
  memoryMiB?: number;
  timeoutMs?: number;
  /** Each GUEST-RESULT line as it arrives (the host's cue to act). */
  onResult?: (line: string) => void;
}

/** Boot a guest and resolve once it powered off (or was killed at the timeout). */
export function bootGuest(o: BootOptions): Promise<GuestRun> {
  const mem = o.memoryMiB ?? 512;
  // biome-ignore format: one QEMU option per line
  const args = [
    '-accel', 'tcg', '-m', String(mem), '-smp', '1',
    '-kernel', kernel() as string, '-initrd', o.initrd,
    '-append', `console=ttyS0 quiet panic=-1 ${o.append ?? ''}`.trim(),
    '-nographic', '-no-reboot',
    ...o.qemu,
  ];
  const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let pending = '';
  const results: string[] = [];
  const onData = (d: Buffer) => {
    const text = d.toString('latin1').replace(/\r/g, '');
    log += text;
    pending += text;
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const at = line.indexOf('GUEST-RESULT: ');
      if (at >= 0) {
        const r = line.slice(at + 14).trim();
        results.push(r);
        o.onResult?.(r);
      }
      nl = pending.indexOf('\n');
    }
  };
  q.stdout.on('data', onData);
  q.stderr.on('data', onData);
  const timer = setTimeout(() => q.kill('SIGKILL'), o.timeoutMs ?? 300_000);
  return new Promise((resolve) => {
    q.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, results, log });
    });
  });
}

/** The rest of the first result line starting with `prefix` (throws with the log's tail if none). */
export function field(run: GuestRun, prefix: string): string {
  const l = run.results.find((r) => r.startsWith(prefix));
  if (l === undefined) throw new Error(`guest printed no "${prefix}" line:\n${run.log.slice(-4000)}`);
  return l.slice(prefix.length).trim();
}

/** Lines the guest reported as failures (`FAIL ...`). */
export function failures(run: GuestRun): string[] {
  return run.results.filter((r) => r.startsWith('FAIL'));
}
