// What `npm run bench:spdk -- --chart RUN.json` and `--markdown RUN.json` print: the chart of a run's
// storkit/SPDK ratios (a bar per row at its median, a dot per pair, the goals 0.9 and 1.0 marked) and
// the rows of docs/performance.md's current table. Plain SVG text, like chart.ts.
import { escapeXml } from './chart.js';
import type { SpdkBenchDoc } from './spdk.js';

const WIDTH = 960;
const LABEL_W = 300;
const VALUE_W = 150;
const ROW_H = 22;
const TOP = 84;

/**
 * A run is a figure only on a machine that was not shared: the load when it started stayed under
 * the CPU count. Not the load after it: the run's own target and client keep both CPUs busy, so
 * the 1-minute load ends near or above 2 on a quiet machine too (each pair's core share says
 * whether another process took the target's core during it).
 */
export function sharedMachine(doc: SpdkBenchDoc): boolean {
  return doc.load[0] >= doc.machine.cpus;
}

function runNote(doc: SpdkBenchDoc): string {
  const load = `load ${doc.load[0]} then ${doc.load[1]} on ${doc.machine.cpus} CPUs`;
  return sharedMachine(doc) ? `machine shared, ${load}: not a figure` : load;
}

export function spdkChartSvg(doc: SpdkBenchDoc): string {
  const hi = Math.max(1.2, ...doc.rows.flatMap((r) => r.ratios)) * 1.05;
  const plotW = WIDTH - LABEL_W - VALUE_W;
  const xOf = (v: number) => LABEL_W + (plotW * Math.min(v, hi)) / hi;
  const h = TOP + doc.rows.length * ROW_H + 40;
  const p: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${h}" viewBox="0 0 ${WIDTH} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${h}" fill="#fff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">storkit / SPDK v24.01, back-to-back pairs (median bar, pairs as dots)</text>`,
    `<text x="10" y="38" fill="#555">${escapeXml(`${doc.date.slice(0, 16).replace('T', ' ')} UTC, ${doc.machine.cpu}; ${doc.command}`)}</text>`,
    `<text x="10" y="56" fill="${sharedMachine(doc) ? '#e15759' : '#555'}"${sharedMachine(doc) ? ' font-weight="bold"' : ''}>${escapeXml(runNote(doc))}</text>`,
  ];
  const bottom = TOP + doc.rows.length * ROW_H;
  for (let t = 0; t <= hi; t += 0.2) {
    const x = xOf(t);
    p.push(`<line x1="${x.toFixed(1)}" y1="${TOP - 6}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="#eee"/>`);
    p.push(
      `<text x="${x.toFixed(1)}" y="${bottom + 14}" text-anchor="middle" fill="#555">${t.toFixed(1)}</text>`,
    );
  }
  for (const [goal, colour] of [
    [0.9, '#e15759'],
    [1.0, '#59a14f'],
  ] as const) {
    const x = xOf(goal).toFixed(1);
    p.push(
      `<line x1="${x}" y1="${TOP - 10}" x2="${x}" y2="${bottom}" stroke="${colour}" stroke-dasharray="4 3"/>`,
      `<text x="${x}" y="${TOP - 13}" text-anchor="middle" fill="${colour}">${goal.toFixed(1)}</text>`,
    );
  }
  doc.rows.forEach((r, i) => {
    const y = TOP + i * ROW_H;
    p.push(`<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end">${escapeXml(r.title)}</text>`);
    p.push(
      `<rect x="${LABEL_W}" y="${y + 4}" width="${(xOf(r.medianRatio) - LABEL_W).toFixed(1)}" height="${ROW_H - 8}" fill="#4e79a7"/>`,
    );
    for (const v of r.ratios)
      p.push(
        `<circle cx="${xOf(v).toFixed(1)}" cy="${y + ROW_H / 2}" r="3" fill="#f28e2b" stroke="#000" stroke-width="0.5"/>`,
      );
    p.push(
      `<text x="${WIDTH - VALUE_W + 8}" y="${y + 15}">${r.medianRatio.toFixed(2)} (${r.pairs.length} pair${r.pairs.length === 1 ? '' : 's'})</text>`,
    );
  });
  p.push(
    `<text x="${LABEL_W + plotW / 2}" y="${bottom + 32}" text-anchor="middle" fill="#555">storkit IOPS / SPDK IOPS (above 1: storkit serves more on the same core)</text>`,
    '</svg>',
  );
  return `${p.join('\n')}\n`;
}

/** The current table's rows: path, ratio, CPU-s per million I/Os, date, command. */
export function spdkMarkdown(doc: SpdkBenchDoc): string {
  const date = `${doc.date.slice(0, 16).replace('T', ' ')} UTC`;
  const note = sharedMachine(doc) ? ` (${runNote(doc)})` : '';
  const lines = [
    '| path (one target core, 4 KiB) | client for both | storkit / SPDK: median (range, pairs) | target CPU-s per M I/Os: storkit, SPDK | date | command |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of doc.rows) {
    const client = r.client === 'iscsi-perf × K' ? `iscsi-perf × ${doc.iscsiClients}` : r.client;
    lines.push(
      `| ${r.title} | ${client} | ${r.medianRatio.toFixed(2)} (${r.minRatio.toFixed(2)}-${r.maxRatio.toFixed(2)}, ${r.pairs.length})${note} | ${r.storkitCpuPerMio.toFixed(2)}, ${r.spdkCpuPerMio.toFixed(2)} | ${date} | \`${doc.command}\` |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
