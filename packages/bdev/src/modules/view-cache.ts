// Copies between a large region (a RAM disk) and scatter lists, through @storkit/native's ViewCache
// of views of the region.
import type { ViewCache } from '@storkit/native';

/** Copy `region[off ..]` into the scatter list. */
export function copyToIovs(cache: ViewCache, off: number, iovs: readonly Uint8Array[]): void {
  for (let i = 0; i < iovs.length; i++) {
    const d = iovs[i];
    d.set(cache.view(off, d.length));
    off += d.length;
  }
}

/** Copy the scatter list into `region[off ..]`. */
export function copyFromIovs(bytes: Uint8Array, off: number, iovs: readonly Uint8Array[]): void {
  for (let i = 0; i < iovs.length; i++) {
    const s = iovs[i];
    bytes.set(s, off);
    off += s.length;
  }
}

/** Whether region[off ..] equals the scatter list. */
export function equalsIovs(bytes: Uint8Array, off: number, iovs: readonly Uint8Array[]): boolean {
  for (let i = 0; i < iovs.length; i++) {
    const s = iovs[i];
    for (let j = 0; j < s.length; j++) if (bytes[off + j] !== s[j]) return false;
    off += s.length;
  }
  return true;
}
