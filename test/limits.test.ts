/**
 * A device made with the WebGPU specification's default limits (what a page gets without asking)
 * runs every method to the same tokens as one with the adapter's own limits.
 */
import { describe, expect, it } from 'vitest';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { createNodeDevice } from '../src/node.js';
import { Pipeline, type PipelineGenerateOptions } from '../src/pipeline.js';
import type { Device } from '../src/tensor/device.js';
import type { Tokenizer } from '../src/models/tokenizer.js';
import { attentionRows } from '../src/tensor/ops/attention.js';
import { fixedSubgroupWidth } from '../src/tensor/limits.js';
import { DEFAULT_TUNING } from '../src/tensor/tuning.js';
import { attentionWorkgroupBytes } from '../src/shaders/attention.js';

const V = 16;
// Head size 64 and contexts over 64 keys: several attention tiles, wide matmuls.
const MODEL = { vocab: V, d: 128, heads: 2, layers: 1, positions: 160 };
const PROMPT = Array.from({ length: 72 }, (_, i) => (i * 7) % V);

async function pipeline(dev: Device): Promise<Pipeline> {
  const target = await tinyGPT2(dev, { ...MODEL, seed: 41 });
  const ar = await tinyGPT2(dev, { ...MODEL, seed: 42 });
  const mdlm = await tinyMDLM(dev, { ...MODEL, seed: 43 });
  return new Pipeline(dev, null as unknown as Tokenizer, target, mdlm, ar);
}

describe('default limits', async () => {
  const big = await getDevice();
  const small = await createNodeDevice({ limits: 'default' });
  const [a, b] = [await pipeline(big), await pipeline(small)];

  it('are the specification\'s', () => {
    expect(small.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    expect(small.limits.maxComputeInvocationsPerWorkgroup).toBe(256);
    const R = attentionRows(small, 64, DEFAULT_TUNING.attentionRows);
    expect(attentionWorkgroupBytes(64, R)).toBeLessThanOrEqual(16384);
    expect(R).toBe(attentionRows(big, 64, DEFAULT_TUNING.attentionRows));
  });

  const runs: Array<[string, PipelineGenerateOptions]> = [
    ['ar', { method: 'ar' }],
    ['speculative', { method: 'speculative', gamma: 4 }],
    ['specdiff', { method: 'specdiff', gamma: 4 }],
    ['specdiff, sampled', { method: 'specdiff', temperature: 0.8, seed: 3 }],
  ];
  for (const [name, opts] of runs) {
    it(`${name}: the same tokens as with the adapter's limits`, async () => {
      const ra = await a.generate(PROMPT, { ...opts, maxNewTokens: 16 }).result();
      const rb = await b.generate(PROMPT, { ...opts, maxNewTokens: 16 }).result();
      expect(rb.tokens).toEqual(ra.tokens);
      expect(rb.tokens.length).toBe(16);
    }, 120_000);
  }
});

describe('fixedSubgroupWidth', () => {
  const info = (subgroups: boolean, min: number, max: number) => ({ features: { shaderF16: false, subgroups, timestampQuery: false }, subgroupMinSize: min, subgroupMaxSize: max });

  it('is the width where every subgroup has it, and 0 where widths vary, are unknown or subgroups are absent', () => {
    expect(fixedSubgroupWidth(info(true, 8, 8))).toBe(8);
    expect(fixedSubgroupWidth(info(true, 32, 32))).toBe(32);
    expect(fixedSubgroupWidth(info(true, 8, 32))).toBe(0);
    expect(fixedSubgroupWidth(info(true, 0, 0))).toBe(0);
    expect(fixedSubgroupWidth(info(false, 8, 8))).toBe(0);
  });
});
