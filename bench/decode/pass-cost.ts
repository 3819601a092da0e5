/**
 * npm run bench:decode -- --pass-cost: where one decoding iteration spends its time, for each method at its
 * defaults (an AR step, speculative decoding with the AR drafter, SpecDiff through the draft head), in
 * one sampled regime (temperature 0.8, top-k 50 unless --temperature / --top-k), on the first held-out passage.
 * Per phase (draft, verify; an AR step is one phase): CPU time recording it, time from then until its result is
 * back, dispatches, compute passes (a copy or upload between dispatches starts a new one), bind groups made, and the GPU time of the profiled iterations (timestamp queries).
 * Every iteration starts from the same context (caches rolled back), so they cost alike.
 *
 * --kernels also lists each phase's kernels: dispatches and GPU time per iteration, by kernel. --autotune first times
 * the matmul kernel variants on this adapter for the defaults' shapes (as `specdiff --autotune` does).
 *
 *   npm run bench:decode -- --pass-cost [--kernels] [--iterations N] [--temperature X] [--top-k N] [--models DIR] [--drafter DIR] [--f32] [--autotune]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARDrafter, createNodeDevice, DiffusionDrafter, dirFolder, loadGPT2, loadMDLM, loadTokenizer, Pipeline, readTensors, type Drafter, type Tensor } from '../../src/node.js';
import { DEFAULT_VERIFICATION, resolveSampling } from '../../src/decode/options.js';
import { Rng } from '../../src/decode/rng.js';
import { selectTokens } from '../../src/decode/sample.js';
import { recordVerify } from '../../src/decode/verify.js';
import { table, fmt } from '../lib/table.js';
import { root, writeResults } from '../lib/decode.js';

const { values } = parseArgs({
  options: {
    'pass-cost': { type: 'boolean' },
    kernels: { type: 'boolean' },
    iterations: { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    models: { type: 'string' },
    drafter: { type: 'string' },
    f32: { type: 'boolean' },
    autotune: { type: 'boolean' },
  },
});
const iterations = Number(values.iterations ?? 30);
const modelsDir = values.models ?? join(root, 'models');
const sampling = resolveSampling({ temperature: Number(values.temperature ?? 0.8), topK: Number(values['top-k'] ?? 50) });

const device = await createNodeDevice();
const dtype = values.f32 ? 'f32' : 'f16';
const tokenizer = await loadTokenizer(dirFolder(join(modelsDir, 'target')));
const target = await loadGPT2(device, dirFolder(join(modelsDir, 'target')), { dtype });
const arModel = await loadGPT2(device, dirFolder(join(modelsDir, 'drafter-ar')), { dtype });
const mdlm = await loadMDLM(device, dirFolder(values.drafter ?? join(modelsDir, 'drafter-mdlm')), { dtype });
if (values.autotune) {
  const t0 = performance.now();
  const shapes = Object.keys(await new Pipeline(device, tokenizer, target, mdlm, arModel).autotune()).length;
  console.log(`autotuned ${shapes} matmul shapes in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
const passage: string = JSON.parse(readFileSync(join(root, 'bench/passages.json'), 'utf8'))[0];
const context = tokenizer.encode(passage).slice(0, 128);

/** One phase's figures, per iteration. */
interface Phase {
  recordMs: number;
  waitMs: number;
  dispatches: number;
  /** Compute passes: a copy or an upload between two dispatches splits the pass. */
  passes: number;
  bindGroups: number;
  gpuMs: number;
  /** Profiled iterations' kernels: key -> summed GPU ms and dispatches. */
  kernels: Map<string, { ms: number; count: number }>;
}
const zero = (): Phase => ({ recordMs: 0, waitMs: 0, dispatches: 0, passes: 0, bindGroups: 0, gpuMs: 0, kernels: new Map() });

/**
 * Runs `record` (which records a phase and returns the tensors it reads back) and waits for the readback. A timed
 * iteration adds its recording and waiting times, dispatches and bind groups made to `into`; a profiled one adds
 * only its GPU time (profiling slows the rest); a warm-up adds nothing.
 */
async function phase(into: Phase, mode: 'warm-up' | 'timed' | 'profiled', record: () => Tensor[]): Promise<Tensor[]> {
  const [d0, p0, b0] = [device.dispatchCount, device.passCount, device.bindGroupCount];
  if (mode === 'profiled') device.startProfiling();
  const t0 = performance.now();
  const out = device.scope(record);
  const t1 = performance.now();
  await readTensors(out);
  const t2 = performance.now();
  if (mode === 'profiled') {
    for (const k of await device.stopProfiling()) {
      into.gpuMs += k.ms;
      const sum = into.kernels.get(k.key) ?? { ms: 0, count: 0 };
      into.kernels.set(k.key, { ms: sum.ms + k.ms, count: sum.count + k.count });
    }
  }
  if (mode === 'timed') {
    into.recordMs += t1 - t0;
    into.waitMs += t2 - t1;
    into.dispatches += device.dispatchCount - d0;
    into.passes += device.passCount - p0;
    into.bindGroups += device.bindGroupCount - b0;
  }
  return out;
}

async function measure(name: string, drafter: Drafter | null, gamma: number): Promise<{ name: string; draft: Phase; verify: Phase }> {
  const cache = target.createCache();
  device.scope(() => target.forward(context.slice(0, -1), cache).dispose());
  const configured = drafter?.configure({}, gamma) ?? null;
  configured?.prefill(context);
  await device.sync();
  const base = cache.length;
  const rng = new Rng(0);
  const sums = { draft: zero(), verify: zero() };
  const profiledIterations = Math.max(3, Math.floor(iterations / 5));
  // Warm-up iterations first (compilation; the pool and the bind-group cache fill), then timed, then profiled.
  const warm = 3;
  for (let it = -warm; it < iterations + profiledIterations; it++) {
    const mode = it < 0 ? 'warm-up' : it < iterations ? 'timed' : 'profiled';
    if (!configured) {
      const [id] = await phase(sums.verify, mode, () => [selectTokens(device, target.forward([context[context.length - 1]], cache, 1), sampling, rng).ids]);
      id.dispose();
    } else {
      const [tokens, q] = await phase(sums.draft, mode, () => {
        const d = configured.draft(context, gamma, sampling, rng);
        return [d.tokens, d.q!];
      });
      const out = await phase(sums.verify, mode, () => {
        const v = recordVerify(target, cache, context[context.length - 1], tokens, q, sampling, rng, undefined, DEFAULT_VERIFICATION);
        return v.greedy ? [v.argmax] : [v.px, v.qx, v.draws, v.pDraws, ...(v.mass ? [v.mass] : [])];
      });
      for (const t of [tokens, q, ...out]) t.dispose();
    }
    cache.truncate(base);
  }
  configured?.dispose();
  cache.dispose();
  const per = (p: Phase): Phase => ({
    recordMs: p.recordMs / iterations,
    waitMs: p.waitMs / iterations,
    dispatches: p.dispatches / iterations,
    passes: p.passes / iterations,
    bindGroups: p.bindGroups / iterations,
    gpuMs: p.gpuMs / profiledIterations,
    kernels: new Map([...p.kernels].map(([k, v]) => [k, { ms: v.ms / profiledIterations, count: v.count / profiledIterations }])),
  });
  return { name, draft: per(sums.draft), verify: per(sums.verify) };
}

const arDrafter = new ARDrafter(arModel);
const diffusionDrafter = new DiffusionDrafter(mdlm);
const [arGamma, sdGamma] = [arDrafter.defaults().gamma, diffusionDrafter.defaults(sampling).gamma];
const results = [
  await measure('AR step', null, 0),
  await measure(`speculative (γ ${arGamma})`, arDrafter, arGamma),
  await measure(`SpecDiff (γ ${sdGamma})`, diffusionDrafter, sdGamma),
];
console.log(`adapter: ${device.info.adapter}; weights ${dtype}; ${JSON.stringify(sampling)}; context ${context.length} tokens; ${iterations} timed iterations`);
console.log('per iteration; wait: from the end of recording until the readback is back; GPU: timestamp queries of profiled iterations\n');
const rows: string[][] = [];
for (const r of results) {
  for (const [phaseName, p] of [['draft', r.draft], ['verify', r.verify]] as const) {
    if (p.dispatches === 0) continue;
    rows.push([r.name, r.name === 'AR step' ? 'step' : phaseName, fmt(p.recordMs, 2), fmt(p.waitMs, 2), fmt(p.recordMs + p.waitMs, 2), fmt(p.dispatches, 0), fmt(p.passes, 0), fmt(p.bindGroups, 1), fmt(p.gpuMs, 2)]);
  }
}
console.log(table(['method', 'phase', 'record ms', 'wait ms', 'total ms', 'dispatches', 'compute passes', 'bind groups made', 'GPU ms'], rows));
if (values.kernels) {
  for (const r of results) {
    for (const [phaseName, p] of [['draft', r.draft], ['verify', r.verify]] as const) {
      if (p.dispatches === 0) continue;
      const kernels = [...p.kernels].sort((a, b) => b[1].ms - a[1].ms);
      console.log(`\n${r.name}, ${r.name === 'AR step' ? 'step' : phaseName}: kernels per profiled iteration`);
      console.log(table(['kernel', 'dispatches', 'GPU ms'], kernels.map(([k, v]) => [k, fmt(v.count, 1), fmt(v.ms, 3)])));
    }
  }
}
const serialised = results.map((r) => ({ ...r, draft: { ...r.draft, kernels: Object.fromEntries(r.draft.kernels) }, verify: { ...r.verify, kernels: Object.fromEntries(r.verify.kernels) } }));
const out = writeResults('pass-cost', { adapter: device.info.adapter, dtype, sampling, contextTokens: context.length, iterations, results: serialised });
console.log(`\nwrote ${out}.json`);
process.exit(0);
