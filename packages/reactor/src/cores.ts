import { ReactorError } from './errors.js';

/**
 * Parse an SPDK core mask: hex ("0x3", "3"), or a list ("[0,1]", "[0-3,6]"). Returns sorted,
 * de-duplicated CPU numbers.
 */
export function parseCoreMask(mask: string): number[] {
  const s = mask.trim();
  const cores = new Set<number>();
  if (s.startsWith('[') && s.endsWith(']')) {
    for (const part of s.slice(1, -1).split(',')) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (m === null) throw new ReactorError('EINVAL', `bad core list entry '${part}' in ${mask}`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new ReactorError('EINVAL', `bad core range '${part}' in ${mask}`);
      for (let c = a; c <= b; c++) cores.add(c);
    }
  } else {
    const hex = s.toLowerCase().startsWith('0x') ? s.slice(2) : s;
    if (!/^[0-9a-f]+$/i.test(hex)) throw new ReactorError('EINVAL', `bad core mask '${mask}'`);
    const v = BigInt(`0x${hex}`);
    for (let c = 0; v >> BigInt(c) > 0n; c++) if ((v >> BigInt(c)) & 1n) cores.add(c);
  }
  if (cores.size === 0) throw new ReactorError('EINVAL', `core mask '${mask}' selects no core`);
  return [...cores].sort((a, b) => a - b);
}
