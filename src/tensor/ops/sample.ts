/** Sampling helpers that keep vocabulary rows on the GPU. */
import { assertShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { kernelSpec } from '../spec.js';
import { checkRowsOf, type RowsOf } from './rows.js';
import { grid2d } from '../../shaders/common.js';
import { filteredProbsWGSL, GATHER_PARAMS, gatherWGSL, PROBS_DRAW_PARAMS, PROBS_PARAMS, RESIDUAL_CHAIN_PARAMS, residualChainWGSL, RESIDUAL_DRAW_PARAMS, residualDrawWGSL, SAMPLE_PARAMS, sampleRowsWGSL, thresholdSearchBytes, type ThresholdSearch } from '../../shaders/sample.js';

export interface SamplingFilter {
  /** > 0. */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose mass reaches topP (1 = all). */
  topP?: number;
}

export function validateFilter(f: SamplingFilter, V: number): void {
  if (!(f.temperature > 0) || !Number.isFinite(f.temperature)) throw new RangeError(`temperature must be a finite number > 0, got ${f.temperature}`);
  const k = f.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`topK must be an integer >= 0, got ${f.topK}`);
  const p = f.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new RangeError(`topP must be in (0, 1], got ${f.topP}`);
  if (V <= 0) throw new RangeError('empty vocabulary');
}

/** A draw filteredProbs makes from the rows it filters: one uniform per row, and where the ids go (i32). */
export interface FilteredDraw {
  uniforms: Tensor;
  ids: RowsOf;
}

/**
 * Probabilities [rows, V] after temperature, top-k and top-p, renormalised. `search`: how
 * thresholds are found (default: the device's tuning.thresholdSearch; others for tests and A/B runs).
 * `cols` keeps only each row's first columns (a drafter's logits without their mask column); `into` writes the
 * rows into an existing f32 tensor of that width, which is returned, instead of a new one. `draw` also draws an
 * index per row from them, as sampleRows would, in the same dispatch.
 */
export function filteredProbs(logits: Tensor, f: SamplingFilter, search: ThresholdSearch = logits.device.tuning.thresholdSearch, opts: { cols?: number; into?: RowsOf; draw?: FilteredDraw } = {}): Tensor {
  logits.assertLive('filteredProbs');
  const width = logits.shape[logits.shape.length - 1];
  const V = opts.cols ?? width;
  assertShape(Number.isInteger(V) && V >= 1 && V <= width, 'filteredProbs', `cols ${V} outside 1..${width}`);
  validateFilter(f, V);
  const rows = logits.size / width;
  checkSearch(search, logits.device.limits.maxComputeWorkgroupStorageSize);
  let out: Tensor, outBase = 0, outStride = V;
  if (opts.into) {
    const stride = checkRowsOf(opts.into, rows, V, 'filteredProbs');
    assertShape(opts.into.tensor.dtype === 'f32' && opts.into.tensor.shape[opts.into.tensor.shape.length - 1] === V, 'filteredProbs', `into must be f32 rows of ${V}, got [${opts.into.tensor.shape}] ${opts.into.tensor.dtype}`);
    out = opts.into.tensor;
    outBase = opts.into.row * V;
    outStride = stride * V;
  } else {
    out = Tensor.empty(logits.device, [...logits.shape.slice(0, -1), V]);
  }
  const topK = f.topK ?? 0;
  const topP = f.topP ?? 1;
  const draw = opts.draw;
  let drawStride = 1;
  if (draw) {
    assertShape(draw.uniforms.size === rows && draw.uniforms.dtype === 'f32', 'filteredProbs', `draw needs ${rows} f32 uniforms, got ${draw.uniforms.size} ${draw.uniforms.dtype}`);
    drawStride = checkRowsOf(draw.ids, rows, 1, 'filteredProbs');
    assertShape(draw.ids.tensor.dtype === 'i32', 'filteredProbs', `draw ids must be i32, got ${draw.ids.tensor.dtype}`);
  }
  const parts = { topK: topK > 0 && topK < V, topP: topP < 1, draw: !!draw };
  const key = `filtered_probs${parts.topK ? '_topk' : ''}${parts.topP ? '_topp' : ''}${parts.topK || parts.topP ? `_b${search.digitBits}_wg${search.wg}` : `_wg${search.wg}`}${draw ? '_draw' : ''}`;
  const params = [rows, V, width, outBase, outStride, topK, 1 / f.temperature, topP];
  if (draw) {
    const spec = kernelSpec(key, ['r', 'w', 'r', 'w'], PROBS_DRAW_PARAMS, () => filteredProbsWGSL(search, parts));
    logits.device.dispatch(spec, [logits.binding, out.binding, draw.uniforms.binding, draw.ids.tensor.binding], [...params, draw.ids.row, drawStride], grid2d(rows));
  } else {
    const spec = kernelSpec(key, ['r', 'w'], PROBS_PARAMS, () => filteredProbsWGSL(search, parts));
    logits.device.dispatch(spec, [logits.binding, out.binding], params, grid2d(rows));
  }
  return out;
}

/** Throws a RangeError for a search this kernel does not have or that needs more than `workgroupBytes`. */
export function checkSearch(s: ThresholdSearch, workgroupBytes: number): void {
  if (![1, 2, 4].includes(s.digitBits)) throw new RangeError(`threshold search: digitBits must be 1, 2 or 4, got ${s.digitBits}`);
  if (![32, 64, 128, 256].includes(s.wg)) throw new RangeError(`threshold search: wg must be 32, 64, 128 or 256, got ${s.wg}`);
  const bytes = thresholdSearchBytes(s);
  if (bytes > workgroupBytes) {
    throw new RangeError(`threshold search with ${s.digitBits}-bit digits in workgroups of ${s.wg} needs ${bytes} bytes of workgroup memory; this device allows ${workgroupBytes}`);
  }
}

/**
 * One index per row drawn from non-negative weights [rows, V] with the given uniforms u ∈ [0, 1), as i32 [rows].
 * `rows` reads uniforms.size rows of a larger weights tensor instead of all of it; `into` writes the indices
 * into an existing i32 tensor, which is returned, instead of a new one.
 */
export function sampleRows(weights: Tensor, uniforms: Tensor, opts: { rows?: Omit<RowsOf, 'tensor'>; into?: RowsOf } = {}): Tensor {
  weights.assertLive('sampleRows');
  const V = weights.shape[weights.shape.length - 1];
  const rows = opts.rows ? uniforms.size : weights.size / V;
  assertShape(uniforms.size === rows && uniforms.dtype === 'f32', 'sampleRows', `needs ${rows} f32 uniforms, got ${uniforms.size} ${uniforms.dtype}`);
  const inStride = opts.rows ? checkRowsOf({ tensor: weights, ...opts.rows }, rows, V, 'sampleRows') : 1;
  let out: Tensor, outStride = 1;
  if (opts.into) {
    outStride = checkRowsOf(opts.into, rows, 1, 'sampleRows');
    assertShape(opts.into.tensor.dtype === 'i32', 'sampleRows', `into must be i32, got ${opts.into.tensor.dtype}`);
    out = opts.into.tensor;
  } else {
    out = Tensor.empty(weights.device, [rows], 'i32');
  }
  const spec = kernelSpec('sample_rows', ['r', 'r', 'w'], SAMPLE_PARAMS, sampleRowsWGSL);
  weights.device.dispatch(spec, [weights.binding, uniforms.binding, out.binding], [rows, V, opts.rows?.row ?? 0, inStride, opts.into?.row ?? 0, outStride], grid2d(rows));
  return out;
}

/**
 * What accepting or rejecting γ drafted tokens needs, in one dispatch: for each drafted position r < γ, p_r(d_r) and
 * q_r(d_r) (px, qx: f32 [γ]) and a token drawn with uniforms[r] from the residual max(0, p_r − q_r) (draws: i32 [γ]).
 * `p` holds at least γ rows of V (a verify's γ + 1), `q` γ rows, `draft` γ i32 tokens. `block` (block verification,
 * decode/accept.ts): row r's residual is max(0, w_r · p_r − q_r), w_r the weight of the drafted prefix before it,
 * and `mass` (f32 [γ]) holds each residual's total.
 */
export function residualDraws(p: Tensor, q: Tensor, draft: Tensor, uniforms: Tensor, opts: { block?: boolean } = {}): { px: Tensor; qx: Tensor; draws: Tensor; mass?: Tensor } {
  const op = 'residualDraws';
  for (const t of [p, q, draft, uniforms]) t.assertLive(op);
  const V = p.shape[p.shape.length - 1];
  const g = draft.size;
  assertShape(p.dtype === 'f32' && q.dtype === 'f32' && q.shape[q.shape.length - 1] === V, op, `p and q must be f32 rows of the same width, got [${p.shape}] and [${q.shape}]`);
  assertShape(draft.dtype === 'i32' && q.size === g * V && p.size >= g * V, op, `${g} i32 drafted tokens need ${g} rows of q and at least ${g} of p, got [${q.shape}] and [${p.shape}]`);
  assertShape(uniforms.dtype === 'f32' && uniforms.size === g, op, `needs ${g} f32 uniforms, got ${uniforms.size} ${uniforms.dtype}`);
  const dev = p.device;
  const block = opts.block === true;
  const draws = Tensor.empty(dev, [g], 'i32');
  const px = Tensor.empty(dev, [g]);
  const qx = Tensor.empty(dev, [g]);
  const mass = block ? Tensor.empty(dev, [g]) : undefined;
  if (g === 0) return { px, qx, draws, mass };
  const outputs = [draws, px, qx, ...(mass ? [mass] : [])];
  const spec = kernelSpec(block ? 'residual_draw_block' : 'residual_draw', ['r', 'r', 'r', 'r', ...outputs.map(() => 'w' as const)], RESIDUAL_DRAW_PARAMS, () => residualDrawWGSL(block));
  dev.dispatch(spec, [p.binding, q.binding, draft.binding, uniforms.binding, ...outputs.map((t) => t.binding)], [g, V], grid2d(g));
  return { px, qx, draws, mass };
}

/** x[i, cols[i]] for each of the first cols.size rows of x [R, V]: the value at each row's chosen index. */
export function pickPerRow(x: Tensor, cols: Tensor): Tensor {
  const n = cols.size;
  return gather2d(x, Tensor.from(x.device, Int32Array.from({ length: n }, (_, i) => i), [n]), cols);
}

/** x[rows[i], cols[i]] for i < n, from x [R, V] and i32 index tensors. */
export function gather2d(x: Tensor, rows: Tensor, cols: Tensor): Tensor {
  x.assertLive('gather2d');
  const V = x.shape[x.shape.length - 1];
  assertShape(rows.size === cols.size && rows.dtype === 'i32' && cols.dtype === 'i32', 'gather2d', 'rows and cols must be i32 of equal size');
  const out = Tensor.empty(x.device, [rows.size]);
  const spec = kernelSpec('gather2d', ['r', 'r', 'r', 'w'], GATHER_PARAMS, gatherWGSL);
  x.device.dispatch(spec, [x.binding, rows.binding, cols.binding, out.binding], [rows.size, V], [Math.ceil(rows.size / 64)]);
  return out;
}

/**
 * Residual chains (a token tree's verification): for row u of probs [n, V] and its candidates
 * `candidates[u]` (pairs of a row of q [*, V] and a token), in order: the acceptance test's numbers
 * (r_j(x), q(x)) with r_0 = probs[u] and r_{j+1} = norm(max(0, r_j − q)), and the last residual of each
 * row (unnormalised). Returns probe [n, maxCands, 2] (unspecified past a row's candidates) and residual [n, V].
 */
export function residualChain(probs: Tensor, q: Tensor, candidates: ReadonlyArray<ReadonlyArray<readonly [number, number]>>): { probe: Tensor; residual: Tensor } {
  probs.assertLive('residualChain');
  q.assertLive('residualChain');
  const V = probs.shape[probs.shape.length - 1];
  const n = probs.size / V;
  const qRows = q.size / V;
  assertShape(q.shape[q.shape.length - 1] === V && candidates.length === n, 'residualChain', `probs ${probs.shape}, q ${q.shape} and ${candidates.length} candidate lists must share V and have one list per row`);
  const maxCands = Math.max(1, ...candidates.map((c) => c.length));
  const pairs = new Uint32Array(n * maxCands * 2);
  candidates.forEach((list, u) =>
    list.forEach(([row, token], j) => {
      assertShape(Number.isInteger(row) && row >= 0 && row < qRows && Number.isInteger(token) && token >= 0 && token < V, 'residualChain', `candidate ${j} of row ${u}: q row ${row} of ${qRows}, token ${token} of ${V}`);
      pairs.set([row, token], (u * maxCands + j) * 2);
    }),
  );
  const dev = probs.device;
  const probe = Tensor.empty(dev, [n, maxCands, 2]);
  const residual = Tensor.empty(dev, [n, V]);
  dev.scope(() => {
    const cands = Tensor.from(dev, pairs, [n * maxCands, 2]);
    const counts = Tensor.from(dev, Uint32Array.from(candidates, (c) => c.length), [n]);
    const spec = kernelSpec('residual_chain', ['r', 'r', 'r', 'r', 'w', 'w'], RESIDUAL_CHAIN_PARAMS, residualChainWGSL);
    dev.dispatch(spec, [probs.binding, q.binding, cands.binding, counts.binding, residual.binding, probe.binding], [n, V, maxCands], grid2d(n));
  });
  return { probe, residual };
}
