/**
 * The kernels a generation can reach, found ahead by recording (never running) one pass of
 * every shape it can take. Kernel choices depend on a pass's row count only up to
 * the device's streamedMaxRows (beyond it one tiled kernel does every count), and not on its key count, so
 * a bounded set of recorded passes covers every later step.
 */
import type { KernelSpec } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import type { GPT2 } from '../models/gpt2.js';
import type { Drafter } from './drafter.js';
import { resolveVerification, type ResolvedSampling, type Verification } from './options.js';
import { Rng } from './rng.js';
import { selectTokens } from './sample.js';
import { recordVerify } from './verify.js';
import { filteredProbs, residualChain, sampleRows } from '../tensor/ops/sample.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';
import { prefillPassRows } from './prefill.js';

export interface ReachSettings {
  sampling: ResolvedSampling;
  /** Longest draft the schedule can reach (0: no drafter). */
  maxGamma: number;
  /** Whether drafts report confidences (a confidence cutoff is set). */
  withConfidence: boolean;
  /** Drafts verified together as a token tree when sampling (default 1). */
  drafts?: number;
  /** How a single sampled draft is verified (default: generate()'s, resolveVerification). */
  verification?: Verification;
  /** Prompt tokens (undefined: any length up to the context). */
  promptTokens?: number;
  /** The prefill of exactly promptTokens (a staged start's first stage), not of every shorter prompt too. */
  exactPrompt?: boolean;
  /** Tokens the generation may add (undefined: up to the context). */
  maxNewTokens?: number;
  /**
   * A staged start (GenerateOptions.draftWhen): plain target steps may add up to this many tokens before the
   * first draft, and the drafter then reads the context in passes of up to streamedMaxRows tokens.
   */
  plainFirst?: number;
  /** Longest stretch of recording between two yields to the event loop (default REACH_SLICE_MS). */
  sliceMs?: number;
}

/** Row counts 1..min(limit, streamed), plus one past it (the tiled kernel) when the limit is beyond. */
function rowCounts(limit: number, streamed: number): number[] {
  const out = Array.from({ length: Math.min(limit, streamed) }, (_, i) => i + 1);
  if (limit > streamed) out.push(streamed + 1);
  return out;
}

/** Longest stretch of recording between two yields to the event loop: about half a one-token step on lavapipe. */
export const REACH_SLICE_MS = 8;

const nextTask = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Every kernel a generation of `target` with `drafter` can dispatch; the drafter is configured first, as a
 * generation configures it. The passes are recorded one at a time, yielding to the event loop every
 * REACH_SLICE_MS, so that a generation beside the search (a staged start's second stage) keeps stepping.
 */
export async function reachableKernels(target: GPT2, given: Drafter | null, s: ReachSettings): Promise<KernelSpec[]> {
  const dev = target.device;
  const capacity = target.config.nPositions;
  const prompt = Math.min(s.promptTokens ?? capacity - 1, capacity - 1);
  const longest = Math.min(capacity, prompt + (s.maxNewTokens ?? capacity) + s.maxGamma + 1);
  const G = s.maxGamma;
  const rng = new Rng(0);
  const ids = (n: number) => new Array<number>(n).fill(0);
  const drafter = given?.configure({}, Math.max(1, s.maxGamma)) ?? null;
  const found = new Map<string, KernelSpec>();
  let sliceStart = performance.now();
  const record = async (pass: () => void): Promise<void> => {
    for (const k of dev.collectKernels(pass)) found.set(k.key, k);
    if (performance.now() - sliceStart < (s.sliceMs ?? REACH_SLICE_MS)) return;
    await nextTask();
    sliceStart = performance.now();
  };
  const cache = target.createCache();
  // A drafter that reads the target's hidden states has the target write them (other kernels).
  const states = drafter?.targetFeatures ? target.createHiddenStates() : undefined;
  try {
    // Target: prefill rows, one-token steps, and a verify of each draft length (a cutoff only shortens it).
    // Exactly this prompt's prefill, in the passes generate() will take (prefill.ts), or every prompt length's.
    const prefilled = Math.max(prompt - 1, 1);
    const prefills = s.exactPrompt && s.promptTokens !== undefined ? [prefillPassRows(target, cache, prefilled, states)] : rowCounts(prefilled, dev.tuning.streamedMaxRows);
    for (const n of prefills) {
      await record(() => {
        cache.truncate(0);
        target.prefill(ids(n), cache, states);
      });
    }
    await record(() => {
      cache.truncate(0);
      selectTokens(dev, target.forward([0], cache, 1, states), s.sampling, rng);
    });
    for (let g = 1; g <= G; g++) {
      await record(() => {
        cache.truncate(0);
        const draft = Tensor.from(dev, Int32Array.from(ids(g)), [g]);
        const q = s.sampling.temperature === 0 ? null : Tensor.empty(dev, [g, drafter?.vocabSize ?? target.vocabSize]);
        recordVerify(target, cache, 0, draft, q, s.sampling, rng, states, resolveVerification(s.verification));
      });
    }
    // Several drafts: a tree pass of each row count, its distributions and residual chains, and the cache keeping a branch.
    const drafts = s.sampling.temperature > 0 ? (s.drafts ?? 1) : 1;
    if (drafts > 1) {
      // A tree has at most MAX_TREE_ROWS rows, fewer when its branches are short.
      for (const n of rowCounts(Math.min(drafts * G + 1, MAX_TREE_ROWS), dev.tuning.streamedMaxRows)) {
        await record(() => {
          cache.truncate(0);
          const chain = { depths: ids(n).map((_, i) => i), ancestors: ids(n).map((_, i) => 2 ** (i + 1) - 1) };
          const probs = filteredProbs(target.forwardTree(Tensor.from(dev, Int32Array.from(ids(n)), [n]), cache, chain), s.sampling);
          const { residual } = residualChain(probs, Tensor.empty(dev, [1, target.vocabSize]), ids(n).map((_, i) => (i === 0 ? [[0, 0] as const] : [])));
          sampleRows(residual, Tensor.from(dev, new Float32Array(n), [n]));
          if (n >= 3) cache.keep(1, [2]);
        });
      }
    }
    if (!drafter) return [...found.values()];
    // Drafter: a prefill, then drafts of every length after contexts of every new-token count
    // (a fresh drafter reads its whole context, as one with a cache reads what is new to it).
    const fresh = () => drafter.dispose();
    await record(() => {
      fresh();
      drafter.prefill(ids(prompt), states);
    });
    // A staged start's catch-up: passes of any row count up to streamedMaxRows.
    if (s.plainFirst) {
      for (let n = 1; n <= Math.min(prompt - 1 + s.plainFirst, dev.tuning.streamedMaxRows); n++) {
        await record(() => {
          fresh();
          drafter.prefill(ids(n + 1), states);
        });
      }
    }
    // New tokens before a draft: up to a rejected longest draft plus one, the prompt, or a
    // drafter's restart after its context filled up (past streamedMaxRows: one shape for all).
    // A drafter that reads a window of the context sees more of it as the context grows, up to the window.
    const restarts = longest >= Math.min(capacity, drafter.maxGamma + 1) - G - 1;
    const windowed = Math.min(drafter.contextWindow ?? 0, longest);
    const added = rowCounts(restarts ? capacity : Math.max(prompt, G + 1, windowed), dev.tuning.streamedMaxRows);
    for (let g = 1; g <= G; g++) {
      await record(() => {
        fresh();
        drafter.draft(ids(1), g, s.sampling, rng, s.withConfidence, states, { drafts, branchLength: g });
      });
    }
    for (const a of added) {
      await record(() => {
        fresh();
        drafter.draft(ids(a), G, s.sampling, rng, s.withConfidence, states);
      });
    }
    return [...found.values()];
  } finally {
    drafter?.dispose();
    cache.dispose();
    states?.dispose();
  }
}
