/** Plain-text tables and number formatting for the benchmark's output. */

export type Cell = string | number | null | undefined;

/** Columns padded to their widest cell; numbers and right-aligned headers ('>name') align right. */
export function table(headers: string[], rows: Cell[][]): string {
  const right = headers.map((h) => h.startsWith('>'));
  const head = headers.map((h) => h.replace(/^>/, ''));
  const cells = rows.map((r) => head.map((_, i) => cellText(r[i])));
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (right[i] ? c.padStart(width[i]) : c.padEnd(width[i]))).join('  ').trimEnd();
  return [line(head), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

function cellText(c: Cell): string {
  if (c === null || c === undefined) return '-';
  if (typeof c === 'string') return c;
  return Number.isInteger(c) && Math.abs(c) < 1e6 ? String(c) : fmt(c);
}

/** Three significant digits, no exponent for the ranges a benchmark prints. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const mag = Math.floor(Math.log10(Math.abs(x)));
  return x.toFixed(Math.max(0, digits - 1 - mag));
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(0)}%`;
}

export function section(title: string): void {
  console.log(`\n== ${title} ${'='.repeat(Math.max(0, 76 - title.length))}`);
}
