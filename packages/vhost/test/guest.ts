import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where the guest scripts live (sources, not compiled). */
export const GUEST_DIR = fileURLToPath(new URL('../../test/guest/', import.meta.url));

export function kernel(): string | null {
  if (!existsSync('/boot')) return null;
  const k = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .pop();
  return k === undefined ? null : `/boot/${k}`;
}

/** Whether QEMU, a kernel and busybox are installed (.ci/run installs them). */
export function guestAvailable(): boolean {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return kernel() !== null && existsSync('/bin/busybox');
}

/** Build (once per workload script version) the initramfs that runs `workload`. */
export function initrd(workload: string): string {
  const src = `${GUEST_DIR}${workload}`;
  const out = `/tmp/storkit-vhost-${workload}-${Math.floor(statSync(src).mtimeMs)}.cpio.gz`;
  if (!existsSync(out)) execFileSync(`${GUEST_DIR}mkinitrd.sh`, [out, src], { stdio: 'inherit' });
  return out;
}

export interface GuestRun {
  /** QEMU's exit code (null when killed). */
  code: number | null;
  /** The GUEST-RESULT lines, without the prefix. */
  results: string[];
  log: string;
}

export interface GuestOptions {
  socket: string;
  type: 'blk' | 'scsi';
  workload: string;
  timeoutMs?: number;
  /** Called for each GUEST-RESULT line as it arrives. */
  onResult?: (line: string) => void;
  /** Guest reconnects when the socket goes away and comes back (target restart). */
  reconnect?: boolean;
  /** Ask the guest for packed virtqueues. */
  packed?: boolean;
  /** Let the guest reboot (QEMU resets the VM instead of exiting). */
  reboot?: boolean;
}

/**
 * Boot a TCG guest whose only disk is a vhost-user-{blk,scsi}-pci device on `socket`, run the
 * workload, and resolve when QEMU exits. The caller keeps polling its reactor meanwhile.
 */
export function bootGuest(opts: GuestOptions): { done: Promise<GuestRun>; kill: () => void } {
  const dev =
    opts.type === 'blk'
      ? 'vhost-user-blk-pci,chardev=c0,num-queues=2'
      : 'vhost-user-scsi-pci,chardev=c0,num_queues=1';
  const device = opts.packed ? `${dev},packed=on` : dev;
  const chardev = `socket,id=c0,path=${opts.socket}${opts.reconnect ? ',reconnect=1' : ''}`;
  // biome-ignore format: one QEMU option per line
  const args = [
    '-accel', 'tcg', '-m', '256', '-smp', '1',
    '-object', 'memory-backend-memfd,id=mem,size=256M,share=on', '-numa', 'node,memdev=mem',
    '-chardev', chardev, '-device', device,
    '-kernel', kernel() as string, '-initrd', initrd(opts.workload),
    '-append', `console=ttyS0 quiet panic=-1 vhdev=${opts.type}`,
    '-nographic', '-nic', 'none',
    ...(opts.reboot ? [] : ['-no-reboot']),
  ];
  const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const results: string[] = [];
  let pending = '';
  const onData = (d: Buffer) => {
    const s = d.toString('latin1').replace(/\r/g, '');
    log += s;
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) {
      const i = l.indexOf('GUEST-RESULT: ');
      if (i >= 0) {
        const r = l.slice(i + 14);
        results.push(r);
        opts.onResult?.(r);
      }
    }
  };
  q.stdout.on('data', onData);
  q.stderr.on('data', onData);
  const timer = setTimeout(() => q.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const done = new Promise<GuestRun>((resolve) => {
    q.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, results, log });
    });
  });
  return { done, kill: () => q.kill('SIGKILL') };
}
