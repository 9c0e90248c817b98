import { expect } from 'chai';

import { accelCopy } from '../src/start.js';

async function steps(ioat: boolean): Promise<Record<string, Record<string, unknown>>> {
  const lines: string[] = [];
  const code = await accelCopy(ioat, (l) => lines.push(l));
  expect(code, lines.join('\n')).to.equal(0);
  const out: Record<string, Record<string, unknown>> = {};
  for (const l of lines) {
    const v = JSON.parse(l) as { step: string };
    out[v.step] = v;
  }
  expect(Object.keys(out)).to.deep.equal(['start', 'fill', 'copy', 'compare', 'crc32c', 'sequence', 'stats']);
  expect(out.fill).to.include({ status: 0, first: 0x5a, last: 0x5a });
  expect(out.compare).to.include({ status: 0, equal: true });
  expect(out.crc32c.crc).to.equal(out.crc32c.expected);
  expect(out.sequence.status).to.equal(0);
  expect(out.sequence.crc).to.equal(out.sequence.expected);
  return out;
}

describe('accel-copy', function () {
  this.timeout(60_000);

  it('runs every operation on the CPU (the software module)', async () => {
    const s = await steps(false);
    expect((s.start.assignments as Record<string, string>).copy).to.equal('software');
  });

  it('runs copy and fill on the I/OAT device model with --ioat', async () => {
    const s = await steps(true);
    expect(s.start.assignments).to.include({ copy: 'ioat', fill: 'ioat', crc32c: 'software' });
    expect((s.stats.stats as { ioat: { cpu_fallback: number } }).ioat.cpu_fallback).to.equal(0);
  });
});
