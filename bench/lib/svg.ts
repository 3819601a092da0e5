/** Small SVG charts for the benchmarks' results: grouped bars and lines, no dependencies. */

export interface Series {
  name: string;
  values: number[];
}

const COLOURS = ['#1f5fa8', '#c2410c', '#15803d', '#7e22ce', '#a16207', '#0f766e', '#be123c', '#4b5563'];
const W = 720;
const H = 360;
const PAD = { left: 56, right: 16, top: 40, bottom: 72 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function frame(title: string, yLabel: string, yMax: number, body: string[], legend: string[]): string {
  const plotH = H - PAD.top - PAD.bottom;
  const ticks = Array.from({ length: 5 }, (_, i) => (yMax * i) / 4);
  const grid = ticks.map((t) => {
    const y = PAD.top + plotH - (t / yMax) * plotH;
    return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${PAD.left - 6}" y="${y + 4}" text-anchor="end">${+t.toFixed(2)}</text>`;
  });
  // Legend entries side by side, each as wide as its name (about 6.5 px a character at 12 px).
  const starts = legend.map((_, i) => PAD.left + legend.slice(0, i).reduce((x, n) => x + 28 + n.length * 6.5, 0));
  const keys = legend.map((name, i) => `<rect x="${starts[i]}" y="${H - 22}" width="12" height="12" fill="${COLOURS[i % COLOURS.length]}"/><text x="${starts[i] + 16}" y="${H - 12}">${esc(name)}</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="14" y="${PAD.top + plotH / 2}" transform="rotate(-90 14 ${PAD.top + plotH / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
    ...grid,
    ...body,
    ...keys,
    '</svg>',
  ].join('\n');
}

/** One group of bars per category, one bar per series. */
export function barChart(title: string, yLabel: string, categories: string[], series: Series[]): string {
  const yMax = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const group = plotW / Math.max(1, categories.length);
  const bar = (group * 0.8) / Math.max(1, series.length);
  const body: string[] = [];
  categories.forEach((c, ci) => {
    const x0 = PAD.left + ci * group + group * 0.1;
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (!Number.isFinite(v)) return;
      const h = (v / yMax) * plotH;
      body.push(`<rect x="${x0 + si * bar}" y="${PAD.top + plotH - h}" width="${bar - 1}" height="${h}" fill="${COLOURS[si % COLOURS.length]}"><title>${esc(`${s.name}, ${c}: ${v.toFixed(3)}`)}</title></rect>`);
    });
    body.push(`<text x="${x0 + group * 0.4}" y="${PAD.top + plotH + 16}" text-anchor="middle">${esc(c)}</text>`);
  });
  return frame(title, yLabel, yMax, body, series.map((s) => s.name));
}

/** One line per series over x = 1, 2, … (values[i] at x = i + 1). */
/** Series over x positions 1..n, or over the labels `xTicks` where given. */
export function lineChart(title: string, yLabel: string, xLabel: string, series: Series[], yMax = 1, xTicks?: ReadonlyArray<string | number>): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i: number) => PAD.left + (i / (n - 1)) * plotW;
  const y = (v: number) => PAD.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const body = series.map((s, si) => {
    // A missing value (NaN) is skipped: the line joins its neighbours.
    const pts = s.values.flatMap((v, i) => (Number.isFinite(v) ? [`${x(i).toFixed(1)},${y(v).toFixed(1)}`] : [])).join(' ');
    return `<polyline fill="none" stroke="${COLOURS[si % COLOURS.length]}" stroke-width="2" points="${pts}"/>`;
  });
  for (let i = 0; i < n; i += Math.ceil(n / 16)) body.push(`<text x="${x(i)}" y="${PAD.top + plotH + 16}" text-anchor="middle">${esc(String(xTicks?.[i] ?? i + 1))}</text>`);
  body.push(`<text x="${PAD.left + plotW / 2}" y="${PAD.top + plotH + 34}" text-anchor="middle">${esc(xLabel)}</text>`);
  return frame(title, yLabel, yMax, body, series.map((s) => s.name));
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((m) => m >= v * 1.05) ?? 10 * mag;
}
