// The offload benchmark's task: SHA-256 over a window of a SharedArrayBuffer (no copy in).
import { createHash } from 'node:crypto';

export default function sha({ sab, len }: { sab: SharedArrayBuffer; len: number }): number {
  const d = createHash('sha256')
    .update(new Uint8Array(sab, 0, len))
    .digest();
  return d.readUInt32LE(0);
}
