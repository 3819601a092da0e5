/** The benchmark's tables and its targets. */
import type { AttentionRow } from './attention.js';
import type { MatmulRow } from './matmul.js';
import type { TfjsResult } from './timing.js';
import { fmt, pct, table, type Cell } from './table.js';

const VARIANT_COLUMNS = ['gemv', 'split4', 'split16', 'gemv8', 'subgroup', 'tiled'];

export function matmulTable(rows: MatmulRow[]): string {
  const head = ['case', '>M', 'best', '>ms/call', '>GB/s', '>GFLOP/s', '>%BW', ...VARIANT_COLUMNS.map((v) => `>${v} ms`), '>tfjs ms', '>ours/tfjs time'];
  const body = rows.map((r): Cell[] => [
    r.case,
    r.M,
    r.best ? r.best + (r.once ? ' (1x)' : '') : 'failed',
    r.ms,
    r.gbps,
    r.gflops,
    r.fracBW === undefined ? null : pct(r.fracBW),
    ...VARIANT_COLUMNS.map((name) => {
      const v = r.variants.find((x) => x.variant === name);
      return v ? (v.timing ? v.timing.ms : 'err') : null;
    }),
    tfjsCell(r.tfjs),
    r.ratio,
  ]);
  return table(head, body);
}

function tfjsCell(r: TfjsResult | undefined): Cell {
  if (!r) return null;
  if (r.ms !== undefined) return r.once ? `${fmt(r.ms)} (1x)` : r.ms;
  return r.error ? 'failed' : 'n/a';
}

export function attentionTable(rows: AttentionRow[]): string {
  const head = ['kind', '>queries', '>keys', '>ms/call', '>GFLOP/s', '>KV GB/s', '>tfjs ms', '>ours/tfjs time'];
  const body = rows.map((r): Cell[] => [
    r.kind,
    r.n,
    r.L,
    r.ours ? (r.ours.once ? `${fmt(r.ours.ms)} (1x)` : r.ours.ms) : r.oursError ? 'failed' : null,
    r.ours ? r.flops / r.ours.ms / 1e6 : null,
    r.ours ? r.kvBytes / r.ours.ms / 1e6 : null,
    tfjsCell(r.tfjs),
    r.ratio,
  ]);
  return table(head, body);
}

export interface Target {
  name: string;
  met: boolean | null;
  detail: string;
}

/** The three targets of the runtime's matmul, judged from the rows. */
export function targets(rows: MatmulRow[], readGBs: number): Target[] {
  const out: Target[] = [];
  const m1 = rows.filter((r) => r.M === 1 && r.ms !== undefined);
  const fails = m1.filter((r) => r.fracBW! < 0.6);
  out.push({
    name: 'M = 1 streams weights at >= 60% of measured read bandwidth',
    met: m1.length ? fails.length === 0 : null,
    detail:
      `read bandwidth ${fmt(readGBs)} GB/s; ` +
      m1.map((r) => `${r.case}: ${fmt(r.gbps!)} GB/s = ${pct(r.fracBW!)}`).join('; '),
  });
  const fc = (M: number) => rows.find((r) => r.K === 768 && r.N === 3072 && r.wtype === 'f32' && r.M === M);
  const [r1, r16] = [fc(1), fc(16)];
  const ratio = r1?.ms && r16?.ms ? r16.ms / r1.ms : undefined;
  out.push({
    name: 'M = 16 costs <= 3x M = 1 on 768x3072',
    met: ratio === undefined ? null : ratio <= 3,
    detail: ratio === undefined ? 'not measured' : `M=1 ${fmt(r1!.ms!)} ms (${r1!.best}), M=16 ${fmt(r16!.ms!)} ms (${r16!.best}): ${fmt(ratio)}x`,
  });
  const cube = rows.find((r) => r.M === 1024 && r.K === 1024 && r.N === 1024);
  const speedup = cube?.ms && cube.tfjs?.ms ? cube.tfjs.ms / cube.ms : undefined;
  out.push({
    name: '1024^3 >= 3x faster than tfjs-webgpu',
    met: speedup === undefined ? null : speedup >= 3,
    detail:
      speedup === undefined
        ? `not measured${cube?.tfjs?.error ? ` (tfjs: ${cube.tfjs.error})` : ''}`
        : `ours ${fmt(cube!.ms!)} ms (${fmt(cube!.gflops!)} GFLOP/s), tfjs ${fmt(cube!.tfjs!.ms!)} ms: ${fmt(speedup)}x`,
  });
  return out;
}

export function targetLines(ts: Target[]): string {
  return ts.map((t) => `[${t.met === null ? 'n/a ' : t.met ? 'MET ' : 'MISS'}] ${t.name}\n       ${t.detail}`).join('\n');
}
