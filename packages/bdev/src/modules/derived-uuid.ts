import { createHash } from 'node:crypto';

// A fixed namespace for UUIDs storkit derives (RFC 4122 name-based, SHA-1, version 5).
const NAMESPACE = Buffer.from('8f3c2b1e6a4d4f0e9b7a5c3d2e1f0a9b', 'hex');

/**
 * A UUID derived from a base bdev's UUID and a label: the same on every reactor and on every
 * reload, so a virtual bdev (a split part) keeps its identity without storing it anywhere.
 */
export function deriveUuid(baseUuid: string, label: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(baseUuid.toLowerCase()).update(label).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
