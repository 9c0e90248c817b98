// Inside the PCIe guest: storkit nvme-identify against SPDK's spdk_nvme_identify on the same QEMU
// controller (pcie-checks.sh saved SPDK's report), field by field. Every field storkit prints must
// appear in SPDK's report with the same value, except the counters that moved between the two runs.
// storkit's runs in this process (a node start costs seconds under TCG), with two -r: the vfio
// controller and the uio one.
import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import { cli } from './in-process.js';

/** "section / parent / key" -> value, from an identify report in SPDK's layout. */
export function parseIdentify(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split('\n');
  let section = '';
  let parent = '';
  let ns = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].replace(/\s+$/, '');
    if (/^=+$/.test(lines[i + 1] ?? '') && l !== '' && !/^=+$/.test(l)) {
      section = l;
      parent = '';
      continue;
    }
    const nsm = /^Namespace ID:(\d+)$/.exec(l);
    if (nsm) {
      ns = `ns${nsm[1]}`;
      continue;
    }
    const m = /^(\s*)([^:]+?):\s*(.*)$/.exec(l);
    if (!m) {
      // A heading of indented keys without a colon ("Multi-path I/O", "Scatter-Gather List").
      if (l !== '' && !/^\s/.test(l) && !/^=+$/.test(l)) parent = l.trim();
      continue;
    }
    const [, indent, key, value] = m;
    if (indent === '' && value === '') {
      parent = key;
      continue;
    }
    if (indent === '') parent = '';
    const where = [section, ns, indent ? parent : ''].filter(Boolean).join(' / ');
    out.set(`${where} / ${key.trim()}`, value.trim());
  }
  return out;
}

// Counters that either tool's own I/O moved between the two reports.
const MOVING = /Health Information \/ (Data Units (Read|Written)|Host (Read|Write) Commands)$/;

describe('guest: storkit nvme-identify against SPDK spdk_nvme_identify on QEMU NVMe', () => {
  it('agrees field by field (storkit identifies two controllers, -r twice: vfio and uio)', async () => {
    const sp = process.env.SPDK_IDENTIFY;
    const [a, u] = [process.env.PCIE_A, process.env.PCIE_U];
    if (!sp || !a || !u)
      throw new Error('SPDK_IDENTIFY / PCIE_A / PCIE_U are not set: this spec runs in the PCIe guest');
    const r = await cli('nvme-identify', '-r', `trtype:PCIe traddr:${a}`, '-r', `trtype:PCIe traddr:${u}`);
    expect(r.code).to.equal(0);
    const reports = r.out
      .split(/^=+\n(?=NVMe Controller at )/m)
      .filter((x) => x.includes('NVMe Controller at'));
    expect(reports.map((x) => /NVMe Controller at (\S+)/.exec(x)?.[1])).to.deep.equal([a, u]);
    expect(reports[1]).to.match(/^Serial Number: +STORKITU$/m);
    const spdk = parseIdentify(readFileSync(sp, 'utf8'));
    const ours = parseIdentify(reports[0]);
    const missing: string[] = [];
    const differ: string[] = [];
    let same = 0;
    for (const [k, v] of ours) {
      if (MOVING.test(k)) continue;
      const s = spdk.get(k);
      if (s === undefined) missing.push(k);
      else if (s !== v) differ.push(`${k}: storkit '${v}' SPDK '${s}'`);
      else same++;
    }
    process.stdout.write(
      `identify: ${same} fields equal, ${differ.length} differ, ${missing.length} not in SPDK's report\n`,
    );
    expect(differ, 'fields with other values').to.deep.equal([]);
    expect(missing, "fields SPDK's report lacks").to.deep.equal([]);
    // The comparison covers the report, not a handful of lines.
    expect(same).to.be.greaterThan(80);
    for (const k of [
      'Controller Capabilities/Features / Serial Number',
      'Controller Capabilities/Features / Max Data Transfer Size',
      'Controller Capabilities/Features / Maximum Queue Entries',
      'Admin Command Set Attributes / Doorbell Buffer Config',
      'NVM Command Set Attributes / Scatter-Gather List / SGL Command Set',
      'Active Namespaces / ns2 / LBA Format #04',
    ]) {
      expect(ours.get(k), k).to.equal(spdk.get(k));
    }
  });

  it('the parser itself sees a changed value (so equality above means something)', () => {
    const a = parseIdentify('X\n=\nSerial Number:     A1\nMulti-path I/O\n  May have:   No\n');
    const b = parseIdentify('X\n=\nSerial Number:     A2\nMulti-path I/O\n  May have:   No\n');
    expect(a.get('X / Serial Number')).to.equal('A1');
    expect(a.get('X / Multi-path I/O / May have')).to.equal('No');
    expect(a.get('X / Serial Number')).to.not.equal(b.get('X / Serial Number'));
  });
});
