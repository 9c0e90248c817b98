import type { Target } from '@storkit/app';

/**
 * A live line on the terminal, once a second: each reactor's load (busy share of the last second)
 * and the IOPS summed over every bdev. Polls through the control plane only.
 */
export function startLiveLine(target: Target): () => void {
  let last: { busy: number[]; idle: number[]; ops: number; t: number } | null = null;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || !target.app) return;
    busy = true;
    try {
      const snaps = await target.app.snapshot();
      const io = await target.server.call('bdev_get_iostat', {});
      const bdevs = ((io.result as { bdevs?: Record<string, number>[] })?.bdevs ?? []) as Record<
        string,
        number
      >[];
      const ops = bdevs.reduce(
        (s, b) => s + b.num_read_ops + b.num_write_ops + b.num_unmap_ops + b.num_other_ops,
        0,
      );
      const now = Date.now();
      const b = snaps.map((s) => s.reactor.busy);
      const i = snaps.map((s) => s.reactor.idle);
      if (last) {
        const loads = b.map((x, k) => {
          const db = x - last!.busy[k];
          const di = i[k] - last!.idle[k];
          return db + di > 0 ? Math.round((100 * db) / (db + di)) : 0;
        });
        const iops = Math.round(((ops - last.ops) * 1000) / (now - last.t));
        const cores = target.app.cores;
        process.stdout.write(
          `\r  load: ${loads.map((l, k) => `core ${cores[k]} ${String(l).padStart(3)}%`).join('  ')}   IOPS: ${iops}      `,
        );
      }
      last = { busy: b, idle: i, ops, t: now };
    } catch {
      // shutting down
    } finally {
      busy = false;
    }
  }, 1000);
  return () => {
    clearInterval(timer);
    process.stdout.write('\n');
  };
}
