/**
 * How the target reads a prompt: in one pass, or a token per pass where one pass would wait for a compilation.
 * A driver that compiles a kernel at its first run (Mesa's llvmpipe: 0.3-0.8 s a kernel) makes a cold start's
 * prefill compile matmul kernels for the prompt's row count, which plain steps never run; a token per pass runs the
 * one-token steps' kernels instead, about 14 ms a token on lavapipe. The choice rests on what the device knows of
 * first runs on its adapter (Device.hasRun, restored by loadTuning): without that record, one pass.
 * docs/performance.md, "Compiling kernels".
 */
import type { GPT2, GPT2Cache, HiddenStates } from '../models/gpt2.js';

/** Tokens per pass of the target's prefill of `tokens` tokens at the end of `cache` (left as it was). */
export function prefillPassRows(target: GPT2, cache: GPT2Cache, tokens: number, states?: HiddenStates): number {
  const dev = target.device;
  if (tokens <= 1 || tokens > dev.tuning.coldPrefillMaxTokens || !dev.keepsFirstRuns) return tokens;
  const base = cache.length;
  const kernels = dev.collectKernels(() => target.prefill(new Array<number>(tokens).fill(0), cache, states));
  cache.truncate(base);
  return kernels.some((k) => dev.hasRun(k.key) === false) ? 1 : tokens;
}
