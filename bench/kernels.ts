/**
 * Kernel benchmark (`npm run bench:kernels [-- --quick] [-- --no-tfjs] [-- --attention]`): the adapter's roofline,
 * then matmul at GPT-2 shapes for every gemv variant, attention, the sampling filter, and the same shapes through
 * tfjs-backend-webgpu on the same adapter. Prints tables and the targets; writes
 * bench/results/kernels-<date>.json. Wall-clock timing of batches of calls, median of batches. `--attention`
 * runs the attention sections alone: the kernel the device picks for decoding's few query rows against the tiled
 * one, batches taken in turn, then GPT-2 small's attention.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionCases, benchFewRows, benchOursAttention, fewRowsCases, type AttentionRow, type FewRowsRow } from './lib/attention.js';
import { benchDevice, deviceDescription } from './lib/gpu.js';
import { nodeGPU } from '../src/node.js';
import { benchMatmulCase, weightData, type MatmulCase, type MatmulRow } from './lib/matmul.js';
import { benchSampling, type SamplingRow } from './lib/sampling.js';
import { attentionTable, matmulTable, targetLines, targets } from './lib/report.js';
import { cpuReadBandwidth, dispatchOverhead, gpuPeakGflops, gpuReadBandwidth } from './lib/roofline.js';
import { fmt, section, table } from './lib/table.js';
import { initTfjs, tfjsAttention, tfjsMatmulCase, type Tfjs } from './lib/tfjs.js';
import './lib/lavapipe-env.js';

const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const ATTENTION_ONLY = args.has('--attention');
const WITH_TFJS = !args.has('--no-tfjs') && !ATTENTION_ONLY;
/** Weights rotate through this many bytes of copies: the bandwidth probe's size, past the caches. */
const WORKING_SET = 256 << 20;
/** Past this, remaining matmul and attention cases are skipped (and said so). */
const DEADLINE_S = 9 * 60;

const t0 = performance.now();
const elapsed = () => (performance.now() - t0) / 1000;
const progress = (s: string) => console.error(`[${elapsed().toFixed(0).padStart(4)}s] ${s}`);
const notes: string[] = [];

function matmulCases(): MatmulCase[] {
  if (ATTENTION_ONLY) return [];
  const Ms = QUICK ? [1, 16, 64] : [1, 4, 8, 16, 64, 256];
  const kn = (name: string, K: number, N: number): MatmulCase => ({ name, K, N, layout: 'kn', wtype: 'f32', Ms });
  const cases: MatmulCase[] = [
    kn('c_attn 768x2304', 768, 2304),
    kn('attn.c_proj 768x768', 768, 768),
    kn('c_fc 768x3072', 768, 3072),
    kn('mlp.c_proj 3072x768', 3072, 768),
    {
      name: 'lm_head 768x50257 nk',
      K: 768, N: 50257, layout: 'nk', wtype: 'f32',
      Ms: Ms.filter((M) => !QUICK || M === 1),
      // Many rows of the LM head take seconds per call: measured once (the tiled pipeline is warm from M=64).
      timing: (M) => (M >= 256 ? { warmup: false, budgetMs: 0 } : M >= 64 ? { budgetMs: 0 } : { budgetMs: 4000, batches: 3 }),
    },
  ];
  // What the GPT-2 forward runs: Conv1D weights kept transposed, [N, K], f32 and f16.
  cases.push({ name: 'c_fc 768x3072 [N,K]', K: 768, N: 3072, layout: 'nk', wtype: 'f32', Ms: Ms.filter((M) => M <= 16) });
  cases.push({ name: 'c_fc 768x3072 [N,K] f16', K: 768, N: 3072, layout: 'nk', wtype: 'f16', Ms: Ms.filter((M) => M <= 16) });
  if (!QUICK) cases.push({ name: '1024^3', K: 1024, N: 1024, layout: 'kn', wtype: 'f32', Ms: [1024], timing: () => ({ batches: 3, budgetMs: 5000 }) });
  return cases;
}

async function main(): Promise<void> {
  const dev = await benchDevice();
  const desc = deviceDescription(dev);
  const load0 = loadavg();
  section('Device');
  console.log(`adapter   ${dev.info.adapter}`);
  console.log(`host      ${cpus()[0]?.model ?? '?'} x${cpus().length}, node ${process.version}, load avg ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`features  ${desc.features.join(', ')}`);
  const limitKeys = Object.keys(desc.limits).filter((k) => /Compute|Storage|Buffer|Alignment|BindGroups/.test(k));
  console.log(`limits    ${limitKeys.map((k) => `${k}=${desc.limits[k]}`).join('\n          ')}`);
  notes.push('times are wall clock per call: R calls recorded into one batch, one device sync, median over batches');
  notes.push(`weights rotate through copies filling ${WORKING_SET >> 20} MiB, so each call streams them from memory`);

  section('Roofline (same adapter)');
  progress('read bandwidth');
  const read = await gpuReadBandwidth(dev);
  progress('peak FMA');
  const peak = await gpuPeakGflops(dev);
  const overhead = await dispatchOverhead(dev);
  progress('CPU bandwidth');
  const cpuGBs = cpuReadBandwidth();
  console.log(table(['probe', '>value', 'unit', 'how'], [
    ['GPU read bandwidth', read.gbps, 'GB/s', `best of launch shapes; 256 MiB, vec4 loads, 64 MiB bindings (${fmt(read.gbps / 4)} G f32 loads/s)`],
    ['GPU peak f32 FMA', peak.gflops, 'GFLOP/s', `best of ${peak.configs.map((c) => `${c.acc} chains: ${fmt(c.gflops)}`).join(', ')}`],
    ['dispatch overhead', overhead.dispatchUs, 'us', 'one 1-invocation dispatch in a long batch'],
    ['empty sync', overhead.syncMs, 'ms', 'device.sync() with nothing recorded'],
    ['CPU read bandwidth (JS)', cpuGBs, 'GB/s', 'one thread summing a 256 MiB Float64Array'],
  ]));
  console.log(`read kernel shapes: ${read.configs.map((c) => `${c.mode}/wg${c.wg}/g${c.groups} ${fmt(c.gbps)}`).join(', ')}`);

  let tfjs: Tfjs | null = null;
  let tfjsError: string | undefined;
  if (WITH_TFJS) {
    try {
      tfjs = await initTfjs(await nodeGPU());
      console.log(`\ntfjs ${tfjs.version}, backend webgpu on the same Dawn instance`);
    } catch (e) {
      tfjsError = (e as Error).message;
      console.log(`\ntfjs-backend-webgpu unavailable: ${tfjsError}`);
    }
  }

  section('matmul');
  const rows: MatmulRow[] = [];
  for (const c of matmulCases()) {
    if (elapsed() > DEADLINE_S) {
      notes.push(`skipped ${c.name}: past the ${DEADLINE_S} s deadline`);
      continue;
    }
    const data = weightData(c.K * c.N);
    const caseRows = await benchMatmulCase(dev, c, data, WORKING_SET, (r) =>
      progress(`${r.case} M=${r.M}: ${r.variants.map((v) => `${v.variant} ${v.timing ? fmt(v.timing.ms) : 'err'}`).join(', ')} ms`),
    );
    if (tfjs) {
      progress(`${c.name}: tfjs`);
      const tf = await tfjsMatmulCase(tfjs, c, data, WORKING_SET);
      for (const r of caseRows) {
        r.tfjs = tf.get(r.M);
        if (r.ms && r.tfjs?.ms) r.ratio = r.ms / r.tfjs.ms;
      }
    }
    rows.push(...caseRows);
  }
  const failures = new Map<string, string[]>();
  const fail = (what: string, msg: string) => failures.set(msg, [...(failures.get(msg) ?? []), what]);
  for (const r of rows) {
    if (r.once) notes.push(`${r.case} M=${r.M}: measured once (one call takes ${fmt(r.ms! / 1000)} s)`);
    if (r.tfjs?.skipped) fail(`tfjs ${r.case} M=${r.M}`, `not run: ${r.tfjs.skipped}`);
    if (r.tfjs?.error) fail(`tfjs ${r.case} M=${r.M}`, `failed: ${r.tfjs.error}`);
    for (const v of r.variants) if (v.error) fail(`${r.case} M=${r.M} ${v.variant}`, `failed: ${v.error}`);
  }
  for (const [msg, what] of failures) notes.push(`${what.join(', ')} ${msg}`);
  if (QUICK) notes.push('--quick: M in {1, 16, 64}, LM head at M=1 only, no 1024^3');

  // The machine is shared: measure the bandwidth again and judge against the better of the two.
  progress('read bandwidth again');
  const readEnd = await gpuReadBandwidth(dev);
  const readGBs = Math.max(read.gbps, readEnd.gbps);
  for (const r of rows) if (r.gbps !== undefined) r.fracBW = r.gbps / readGBs;
  console.log(`GPU read bandwidth ${fmt(read.gbps)} GB/s before, ${fmt(readEnd.gbps)} GB/s after the matmuls: %BW is against ${fmt(readGBs)} GB/s\n`);
  console.log(matmulTable(rows));

  section('attention at decoding\'s few query rows (causal): the kernel the device picks against the tiled one');
  const fewRows: FewRowsRow[] = [];
  for (const c of fewRowsCases()) {
    progress(`attention ${c.n} rows x ${c.L} keys, ${c.H} heads`);
    fewRows.push(await benchFewRows(dev, c));
  }
  console.log(table(['>heads', '>queries', '>keys', 'kernel picked', '>ms/call', '>tiled ms/call', '>speedup'], fewRows.map((r) => [
    r.H, r.n, r.L, r.chosenKernel, r.chosen?.ms ?? (r.error ? `error: ${r.error}` : null), r.tiled?.ms ?? null, r.chosen && r.tiled ? `${fmt(r.tiled.ms / r.chosen.ms)}x` : null,
  ])));

  section('attention (12 heads x 64, causal)');
  const attn: AttentionRow[] = [];
  for (const c of attentionCases()) {
    if (elapsed() > DEADLINE_S) {
      notes.push(`skipped attention ${c.kind} ${c.n}x${c.L}: past the deadline`);
      continue;
    }
    progress(`attention ${c.kind} n=${c.n} L=${c.L}`);
    const r = await benchOursAttention(dev, c);
    if (tfjs) {
      r.tfjs = await tfjsAttention(tfjs, c);
      if (r.ours && r.tfjs.ms) r.ratio = r.ours.ms / r.tfjs.ms;
    }
    attn.push(r);
  }
  notes.push('tfjs attention = matMul(q, k^T)*scale (+ mask) -> softmax -> matMul(p, v) on [H, n, 64], head transposes not timed');
  console.log(attentionTable(attn));

  section('sampling filter (filteredProbs: softmax(x / T), top-k, top-p)');
  let sampling: SamplingRow[] = [];
  if (ATTENTION_ONLY) notes.push('--attention: no matmul or sampling filter');
  else if (elapsed() > DEADLINE_S) notes.push('skipped the sampling filter: past the deadline');
  else {
    progress('sampling filter');
    sampling = await benchSampling(dev, QUICK);
    const ms = (t: SamplingRow['ours'] | undefined) => (t === undefined ? '' : typeof t === 'string' ? `error: ${t}` : fmt(t.ms));
    console.log(table(['rows', '>V', 'filter', `>ms (${dev.tuning.thresholdSearch.digitBits}-bit digits, wg ${dev.tuning.thresholdSearch.wg})`, '>ms (1 bit per pass, wg 256)', '>speedup'], sampling.map((r) => {
      const ratio = typeof r.ours === 'object' && typeof r.bitPerPass === 'object' ? `${fmt(r.bitPerPass.ms / r.ours.ms)}x` : '';
      return [r.rows, r.V, r.filter, ms(r.ours), ms(r.bitPerPass), ratio];
    })));
  }

  section('Targets');
  const ts = targets(rows, readGBs);
  console.log(targetLines(ts));

  section('Notes');
  const load1 = loadavg();
  notes.push(`load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ${load1.map((x) => x.toFixed(2)).join(' ')} at end (2 shared cores: noisy)`);
  for (const n of notes) console.log(`- ${n}`);

  const date = new Date().toISOString().replace(/:/g, '-').replace(/\..*/, '');
  const path = join(dirname(fileURLToPath(import.meta.url)), 'results', `kernels-${date}.json`);
  mkdirSync(dirname(path), { recursive: true });
  const json = {
    date: new Date().toISOString(),
    quick: QUICK,
    seconds: elapsed(),
    host: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadavgStart: load0, loadavgEnd: load1 },
    adapter: dev.info.adapter,
    features: desc.features,
    limits: desc.limits,
    roofline: { readGBs, read, readEnd, peak, overhead, cpuReadGBs: cpuGBs },
    tfjs: tfjs ? { version: tfjs.version } : { error: tfjsError ?? 'disabled' },
    matmul: rows,
    attention: attn,
    attentionFewRows: fewRows,
    sampling,
    targets: ts,
    notes,
  };
  writeFileSync(path, JSON.stringify(json, null, 1));
  console.log(`\nJSON: ${path} (${elapsed().toFixed(0)} s)`);
  dev.destroy();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
