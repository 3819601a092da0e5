/**
 * Labelled progress bars on stderr, one line per file or model, each ending at 100 % on its own line. On a
 * terminal a bar redraws in place; elsewhere (a pipe, a log) only its finished line is written.
 */
const BAR_WIDTH = 30;
const LABEL_WIDTH = 32;

export class ProgressBars {
  private drawn: { label: string; pct: number } | null = null;

  constructor(private readonly out: { write(s: string): unknown; isTTY?: boolean } = process.stderr) {}

  /** `label` at loaded of total; a bar left unfinished on screen by another label is moved past first. */
  update(label: string, loaded: number, total: number, detail = ''): void {
    if (!this.out.isTTY) return;
    const pct = Math.min(99, Math.floor((100 * loaded) / Math.max(total, 1)));
    if (this.drawn?.label === label && this.drawn.pct === pct) return;
    if (this.drawn && this.drawn.label !== label) this.out.write('\n');
    this.drawn = { label, pct };
    this.out.write(`\r${line(label, pct, detail)}\x1b[K`);
  }

  /** Ends `label`'s bar: drawn at 100 %, then a newline. */
  finish(label: string, detail = ''): void {
    const over = this.out.isTTY && this.drawn?.label === label;
    if (this.out.isTTY && this.drawn && !over) this.out.write('\n');
    this.drawn = null;
    this.out.write(`${over ? '\r' : ''}${line(label, 100, detail)}${this.out.isTTY ? '\x1b[K' : ''}\n`);
  }
}

function line(label: string, pct: number, detail: string): string {
  const fill = Math.floor((BAR_WIDTH * pct) / 100);
  return `${label.padEnd(LABEL_WIDTH)} [${'#'.repeat(fill)}${'.'.repeat(BAR_WIDTH - fill)}] ${String(pct).padStart(3)}%${detail ? ` ${detail}` : ''}`;
}

/** 1.2 KB, 46.0 MB. */
export function formatBytes(n: number): string {
  return n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 2 ** 20).toFixed(1)} MB`;
}
