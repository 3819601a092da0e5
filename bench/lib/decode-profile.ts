/** Where one draft and one verify spend their GPU time (timestamp queries), for bench:decode. */
import { readTensors } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/decode/rng.js';
import { verifyDraft } from '../../src/decode/verify.js';
import { DEFAULT_VERIFICATION } from '../../src/decode/options.js';
import type { DecodeBench, View } from './decode.js';

export type Profile = Record<string, Array<{ key: string; ms: number; count: number }>>;

/** Profiles a greedy draft of γ tokens in T steps at window W and its verify, on the first prompt, and prints the top kernels. */
export async function profileDraftAndVerify(bench: DecodeBench, gamma: number, steps: number | undefined, W: View): Promise<Profile> {
  const { device, target, tokenizer } = bench;
  const profile: Profile = {};
  const ids = tokenizer.encode(bench.flags.prompts[0]);
  const drafter = bench.diffusionDrafter(steps, W);
  const sampling = { temperature: 0, topK: 0, topP: 1 };
  const rng = new Rng(0);
  const cache = target.createCache();
  target.forward(ids.slice(0, -1), cache).dispose();
  // Once unprofiled (llvmpipe compiles a kernel at its first dispatch, inside the GPU timeline), then profiled.
  for (const profiled of [false, true]) {
    if (profiled) device.startProfiling();
    const draft = device.scope(() => drafter.draft(ids, gamma, sampling, rng));
    await readTensors([draft.tokens]);
    if (profiled) profile.draft = await device.stopProfiling();
    await device.sync();
    if (profiled) device.startProfiling();
    const base = cache.length;
    await verifyDraft(target, cache, ids[ids.length - 1], draft.tokens, null, sampling, rng, undefined, DEFAULT_VERIFICATION);
    cache.truncate(base);
    if (profiled) profile.verify = await device.stopProfiling();
    draft.tokens.dispose();
  }
  cache.dispose();
  drafter.dispose();
  for (const [phase, rows] of Object.entries(profile)) {
    const total = rows.reduce((s, r) => s + r.ms, 0);
    console.log(`\nGPU time of one ${phase} (γ=${gamma}${phase === 'draft' ? `, T=${steps}` : ''}): ${total.toFixed(1)} ms`);
    for (const r of rows.slice(0, 8)) console.log(`  ${r.key.padEnd(44)} ${r.ms.toFixed(2).padStart(8)} ms  ${String(r.count).padStart(4)} calls  ${((100 * r.ms) / total).toFixed(0).padStart(3)}%`);
  }
  return profile;
}
