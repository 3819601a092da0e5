/**
 * One iteration of the decoding loop. speculativeStep is the algorithm of speculative decoding:
 * draft γ tokens, verify them in one target pass, roll the target's cache back to what was
 * accepted, update the drafter. targetStep is a plain autoregressive step. Both say when their
 * phases ended; the loop keeps the times and the statistics.
 */
import type { GPT2, GPT2Cache, HiddenStates } from '../models/gpt2.js';
import { checkSampledIds } from '../models/errors.js';
import { readTensors, Tensor } from '../tensor/tensor.js';
import { slice } from '../tensor/ops/gather.js';
import type { Drafter, DraftTree } from './drafter.js';
import type { ResolvedSampling, Verification } from './options.js';
import type { Rng } from './rng.js';
import { selectTokens } from './sample.js';
import { verifiedLength } from './accept.js';
import { verifyDraft, type Verdict } from './verify.js';
import { acceptTreeGreedy, acceptTreeProbed, buildTokenTree, treeCandidates, type TreeVerdict } from './tree.js';
import { argmax } from '../tensor/ops/rowwise.js';
import { filteredProbs, residualChain, sampleRows } from '../tensor/ops/sample.js';

/** What every step of one generation shares. */
export interface StepContext {
  target: GPT2;
  cache: GPT2Cache;
  sampling: ResolvedSampling;
  rng: Rng;
  /** The target's hidden states, written by its forwards for a drafter that reads them. */
  states?: HiddenStates;
}

export interface SpeculativeContext extends StepContext {
  drafter: Drafter;
  /** Verify a draft only up to its first token the drafter gave a probability below this (0: off). */
  cutoff: number;
  /** Independent drafts verified together as a token tree (default 1: a single draft). */
  drafts?: number;
  /** With several drafts: the length of each after the first (default γ). */
  branchLength?: number;
  /** How a single sampled draft is verified. */
  verification: Verification;
}

export interface StepResult extends Omit<Verdict, 'draft'> {
  /** Drafted tokens the target verified (empty for a plain step). */
  drafted: number[];
  drafterPasses: number;
  /** Rows the target's pass scored: 1 for a plain step, the drafted tokens + 1 for one draft, a token tree's rows. */
  targetRows: number;
  /** Draft-head steps of the draft (0 without a draft head). */
  draftHeadSteps: number;
  /** performance.now() when the draft had run (a plain step's start) and when the verification had. */
  draftDone: number;
  verifyDone: number;
}

/** Draft → verify → roll back → update: one target pass that emits the accepted drafts and the target's token. */
export async function speculativeStep(s: SpeculativeContext, context: readonly number[], gamma: number): Promise<StepResult> {
  // A tree's rows all take cache positions while it is verified: near the context's end, fewer drafts fit.
  const branchLength = Math.min(s.branchLength ?? gamma, gamma);
  const fit = 1 + Math.floor((s.cache.capacity - s.cache.length - 1 - gamma) / branchLength);
  const drafts = Math.min(s.drafts ?? 1, fit);
  if (drafts > 1) return treeStep(s, context, gamma, { drafts, branchLength });
  const proposal = await propose(s, context, gamma);
  const base = s.cache.length;
  const { verdict, draftDone } = await verify(s, context[context.length - 1], proposal);
  const verifyDone = performance.now();
  s.cache.truncate(base + 1 + verdict.accepted);
  s.drafter.afterVerify(verdict.draft, verdict.accepted);
  const { draft, ...rest } = verdict;
  return { ...rest, drafted: draft, drafterPasses: proposal.passes, targetRows: draft.length + 1, draftHeadSteps: proposal.headSteps, draftDone, verifyDone };
}

/**
 * Several drafts → one target pass over their token tree → keep the accepted branch in the cache.
 * The drafts are read back to build the tree; the GPU then reduces the target's distributions at the
 * tree's rows to the numbers the verdict needs (sampling: each candidate's (r(x), q(x)) along its row's
 * residual chain and a draw from each row's last residual; greedy: the argmax per row), read back at once.
 */
async function treeStep(s: SpeculativeContext, context: readonly number[], gamma: number, shape: DraftTree): Promise<StepResult> {
  const dev = s.target.device;
  const draft = dev.scope(() => s.drafter.draft(context, gamma, s.sampling, s.rng, false, s.states, shape));
  const reduced: Tensor[] = [];
  try {
    const [flat] = await readTensors([draft.tokens]);
    const draftDone = performance.now();
    // Slots past a shorter branch's end were never drawn: only the drafts' own tokens are checked.
    const drafts = Array.from({ length: shape.drafts }, (_, k) => Array.from(flat.subarray(k * gamma, k * gamma + (k === 0 ? gamma : shape.branchLength))));
    checkSampledIds(drafts.flat(), s.target.vocabSize, 'the drafter');
    const tree = buildTokenTree(context[context.length - 1], drafts);
    const candidates = treeCandidates(tree, drafts);
    const base = s.cache.length;
    const n = tree.tokens.length;
    const uDraw = draft.q ? s.rng.uniforms(n) : null;
    reduced.push(
      ...dev.scope(() => {
        const logits = s.target.forwardTree(Tensor.from(dev, Int32Array.from(tree.tokens), [n]), s.cache, tree);
        if (!draft.q || !uDraw) return [argmax(logits)];
        const { temperature, topK, topP } = s.sampling;
        const pairs = candidates.map((list) => list.map(({ draft: k, position }) => [k * gamma + position, drafts[k][position]] as const));
        const { probe, residual } = residualChain(filteredProbs(logits, { temperature, topK, topP }), draft.q, pairs);
        return [probe, sampleRows(residual, Tensor.from(dev, uDraw, [n]))];
      }),
    );
    const V = s.target.vocabSize;
    let verdict: TreeVerdict;
    if (reduced.length === 1) {
      const [am] = await readTensors(reduced);
      checkSampledIds(am, V, 'the target');
      verdict = acceptTreeGreedy(tree, drafts, am);
    } else {
      const [probe, draws] = await readTensors(reduced);
      const width = probe.length / (2 * n);
      verdict = acceptTreeProbed(tree, candidates, (row, j) => [probe[2 * (row * width + j)], probe[2 * (row * width + j) + 1]], (row) => draws[row], () => s.rng.uniform());
      checkSampledIds([verdict.next], V, 'the target');
    }
    const verifyDone = performance.now();
    s.cache.keep(base + 1, verdict.rows.map((r) => base + r));
    const drafted = drafts[verdict.draft];
    s.drafter.afterVerify(drafted, verdict.accepted);
    return {
      drafted,
      accepted: verdict.accepted,
      next: verdict.next,
      drafterPasses: draft.passes,
      targetRows: n,
      draftHeadSteps: draft.headSteps ?? 0,
      draftDone,
      verifyDone,
    };
  } finally {
    for (const t of [draft.tokens, draft.q, draft.confidence, ...reduced]) t?.dispose();
  }
}

/** The target alone: one forward of the pending token and a draw from it. */
export async function targetStep(s: StepContext, context: readonly number[]): Promise<StepResult> {
  const start = performance.now();
  const dev = s.target.device;
  const ids = dev.scope(() => selectTokens(dev, s.target.forward([context[context.length - 1]], s.cache, 1, s.states), s.sampling, s.rng).ids);
  const [id] = await readTensors([ids]);
  ids.dispose();
  checkSampledIds(id, s.target.vocabSize, 'the target');
  return { drafted: [], accepted: 0, next: id[0], drafterPasses: 0, targetRows: 1, draftHeadSteps: 0, draftDone: start, verifyDone: performance.now() };
}

/** A draft as the target verifies it; `done` resolves to the time the drafting finished. */
interface Proposal {
  tokens: Tensor;
  q: Tensor | null;
  passes: number;
  headSteps: number;
  done: Promise<number>;
  /** Frees the draft's tensors, those cut from it included. */
  dispose(): void;
}

/** Records a draft and, with a confidence cutoff, cuts it at its first token below the cutoff. */
async function propose(s: SpeculativeContext, context: readonly number[], gamma: number): Promise<Proposal> {
  const dev = s.target.device;
  const draft = dev.scope(() => s.drafter.draft(context, gamma, s.sampling, s.rng, s.cutoff > 0, s.states));
  let { tokens, q } = draft;
  const dispose = () => {
    for (const t of new Set([tokens, q, draft.tokens, draft.q, draft.confidence])) t?.dispose();
  };
  if (!draft.confidence) {
    // Submit the draft now and record the verify while it runs; the verify reads the
    // drafted tokens on the GPU. This small readback only times the draft: it resolves
    // when the draft is done (or, if later, when recording the verify ends).
    const done = readTensors([draft.tokens]).then(() => performance.now());
    done.catch(() => undefined); // a failure surfaces from the verify's own readback
    return { tokens, q, passes: draft.passes, headSteps: draft.headSteps ?? 0, done, dispose };
  }
  try {
    // The cut needs the draft's confidences before the verify is recorded.
    const [confidence] = await readTensors([draft.confidence]);
    const done = Promise.resolve(performance.now());
    const n = verifiedLength(confidence, s.cutoff);
    if (n < gamma) [tokens, q] = dev.scope(() => [slice(draft.tokens, 0, n, 0), draft.q && slice(draft.q, 0, n, 0)]);
    return { tokens, q, passes: draft.passes, headSteps: draft.headSteps ?? 0, done, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

/** Verifies a proposal in one target pass and frees it; the draft's end time comes with the verdict. */
async function verify(s: SpeculativeContext, pending: number, p: Proposal): Promise<{ verdict: Verdict; draftDone: number }> {
  try {
    const verdict = await verifyDraft(s.target, s.cache, pending, p.tokens, p.q, s.sampling, s.rng, s.states, s.verification);
    return { verdict, draftDone: await p.done };
  } finally {
    await p.done.catch(() => undefined);
    p.dispose();
  }
}
