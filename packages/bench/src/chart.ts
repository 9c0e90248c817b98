// The summary chart (docs/bench/latest.svg): one panel per unit, since only figures of one unit
// share an axis; in each, a horizontal bar per figure on a log scale (figures span six decades),
// coloured by suite, baselines in grey. Plain SVG text: no library, opens in any browser.
import type { BenchRecord } from './record.js';
import { formatFigure } from './summary.js';

const WIDTH = 960;
const LABEL_W = 430;
const VALUE_W = 110;
const ROW_H = 16;
const PANEL_HEAD = 34;
const AXIS_H = 18;
const GAP = 14;
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#76b7b2',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
];
const BASELINE = '#bab0ac';

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Decades [lo, hi] (powers of ten) that hold every value, at least one decade wide. */
export function decades(values: readonly number[]): [number, number] {
  const pos = values.filter((v) => v > 0);
  if (pos.length === 0) return [0, 1];
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  const hi = Math.ceil(Math.log10(Math.max(...pos)));
  return [lo, Math.max(hi, lo + 1)];
}

/** A tick's label: `100 ns`, `1 µs` on a time axis; `10 k`, `1 M` on any other. */
export function axisLabel(v: number, unit: string): string {
  const time = /^(ns|µs|us|ms)(?=$|[ /])/.exec(unit);
  if (time !== null) return formatFigure(v, time[1]);
  return formatFigure(v, unit).slice(0, -unit.length).trim();
}

/** An SVG document charting `records`; `subtitle` says when and where they were taken. */
export function chartSvg(records: readonly BenchRecord[], subtitle: string): string {
  const units = [...new Set(records.map((r) => r.unit))];
  const suites = [...new Set(records.map((r) => r.suite))];
  const colour = (r: BenchRecord) =>
    r.baseline ? BASELINE : PALETTE[suites.indexOf(r.suite) % PALETTE.length];
  const parts: string[] = [];
  let y = 40;
  for (const unit of units) {
    const rs = records.filter((r) => r.unit === unit);
    const [lo, hi] = decades(rs.map((r) => r.value));
    const x0 = LABEL_W;
    const plotW = WIDTH - LABEL_W - VALUE_W;
    const xOf = (v: number) => x0 + (plotW * (Math.log10(Math.max(v, 10 ** lo)) - lo)) / (hi - lo);
    const better = rs[0].better === 'lower' ? 'lower is better' : 'higher is better';
    parts.push(`<text x="8" y="${y + 18}" class="panel">${escapeXml(unit)} (${better}, log scale)</text>`);
    const top = y + PANEL_HEAD;
    const bottom = top + rs.length * ROW_H;
    for (let d = lo; d <= hi; d++) {
      const x = xOf(10 ** d).toFixed(1);
      parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${bottom}" class="grid"/>`);
      parts.push(
        `<text x="${x}" y="${bottom + 13}" class="axis" text-anchor="middle">${escapeXml(axisLabel(10 ** d, unit))}</text>`,
      );
    }
    rs.forEach((r, i) => {
      const ry = top + i * ROW_H;
      const label = `${r.suite} · ${r.name}${r.baseline ? ' (baseline)' : ''}`;
      const w = Math.max(1, xOf(r.value) - x0);
      parts.push(
        `<text x="${x0 - 6}" y="${ry + 11}" class="label" text-anchor="end">${escapeXml(label.length > 70 ? `${label.slice(0, 69)}…` : label)}</text>`,
        `<rect x="${x0}" y="${ry + 2}" width="${w.toFixed(1)}" height="${ROW_H - 4}" fill="${colour(r)}"><title>${escapeXml(`${label}: ${formatFigure(r.value, r.unit)}`)}</title></rect>`,
        `<text x="${(x0 + w + 4).toFixed(1)}" y="${ry + 11}" class="value">${escapeXml(formatFigure(r.value, r.unit))}</text>`,
      );
    });
    y = bottom + AXIS_H + GAP;
  }
  const height = y + 8;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:15px;font-weight:bold}.sub{font-size:11px;fill:#555}.panel{font-size:13px;font-weight:bold}.label,.value{font-size:10.5px}.axis{font-size:9.5px;fill:#555}.grid{stroke:#ddd;stroke-width:1}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    '<text x="8" y="18" class="title">storkit npm run bench</text>',
    `<text x="8" y="33" class="sub">${escapeXml(subtitle)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
