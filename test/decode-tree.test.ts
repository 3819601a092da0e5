/**
 * Several drafts verified as a token tree (src/decode/tree.ts): the tree's layout, the multi-draft
 * acceptance rule's exactness on a toy chain (with negative controls), the target's tree pass against
 * plain passes over each branch, the cache keeping the accepted branch, and generation with several
 * drafts (chi-square of helpers/exactness.ts; its negative control is in decode-exact.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { acceptTree, acceptTreeGreedy, buildTokenTree } from '../src/decode/tree.js';
import { Rng } from '../src/decode/rng.js';
import { generate } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { Tensor } from '../src/tensor/tensor.js';
import { getDevice } from './helpers/device.js';
import { expectClose } from './helpers/reference.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { CHI2_35_999, chiSquare, empirical, exactJoint, V } from './helpers/exactness.js';

describe('token tree layout', () => {
  it('merges drafts that share a prefix and gives each row its depth and ancestors (itself included)', () => {
    const tree = buildTokenTree(0, [
      [1, 2],
      [1, 3],
      [4, 2],
    ]);
    expect(tree.tokens).toEqual([0, 1, 2, 3, 4, 2]);
    expect(tree.depths).toEqual([0, 1, 2, 2, 1, 2]);
    expect(tree.ancestors).toEqual([0b1, 0b11, 0b111, 0b1011, 0b10001, 0b110001]);
    expect(tree.rowOf).toEqual([
      [1, 2],
      [1, 3],
      [4, 5],
    ]);
  });

  it('greedy: follows the target\'s argmax through whichever draft has it', () => {
    const drafts = [
      [1, 2],
      [1, 3],
      [4, 2],
    ];
    const tree = buildTokenTree(0, drafts);
    // argmax by row: after the root 1, after 1 it is 3 (draft 1's branch), after 1 3 it is 5.
    const argmax = [1, 3, 0, 5, 0, 0];
    expect(acceptTreeGreedy(tree, drafts, argmax)).toEqual({ draft: 1, accepted: 2, rows: [1, 3], next: 5 });
    expect(acceptTreeGreedy(tree, drafts, [7, 0, 0, 0, 0, 0])).toEqual({ draft: 0, accepted: 0, rows: [], next: 7 });
  });
});

/**
 * A toy target and drafter over 4 tokens whose distributions depend on the previous token: the output's
 * first three tokens are counted over many generations of K drafts of γ and compared with the target's chain.
 */
describe('the multi-draft rule keeps the target\'s distribution (toy chain, chi-square on three tokens)', () => {
  const n = 4;
  const P = [
    [0.5, 0.2, 0.2, 0.1],
    [0.1, 0.6, 0.2, 0.1],
    [0.25, 0.25, 0.25, 0.25],
    [0.05, 0.05, 0.1, 0.8],
  ];
  const Q = [
    [0.3, 0.3, 0.3, 0.1],
    [0.4, 0.4, 0.1, 0.1],
    [0.1, 0.1, 0.7, 0.1],
    [0.25, 0.25, 0.25, 0.25],
  ];
  const samples = 40_000;
  // Chi-square critical value for 63 degrees of freedom at p = 0.001.
  const critical = 103.4;

  function drawFrom(dist: readonly number[], u: number): number {
    let acc = 0;
    for (let i = 0; i < dist.length; i++) if (u < (acc += dist[i])) return i;
    return dist.length - 1;
  }

  /**
   * Counts of the first three tokens after token 0; `reportedQ` is what the rule is told the drafts came from.
   * Drafts after the first are `branch` long.
   */
  function counts(drafts: number, gamma: number, reportedQ: number[][], seed: number, branch = gamma): Float64Array {
    const rng = new Rng(seed);
    const out = new Float64Array(n ** 3);
    for (let s = 0; s < samples; s++) {
      const seq = [0];
      while (seq.length < 4) {
        const last = seq[seq.length - 1];
        const ds = Array.from({ length: drafts }, () => {
          const d: number[] = [];
          for (let i = 0; i < gamma; i++) d.push(drawFrom(Q[i === 0 ? last : d[i - 1]], rng.uniform()));
          return d;
        }).map((d, k) => (k === 0 ? d : d.slice(0, branch)));
        const tree = buildTokenTree(last, ds);
        const v = acceptTree(tree, ds, (row) => P[tree.tokens[row]], (k, i) => reportedQ[i === 0 ? last : ds[k][i - 1]], () => rng.uniform());
        seq.push(...ds[v.draft].slice(0, v.accepted), v.next);
      }
      out[seq[1] * 16 + seq[2] * 4 + seq[3]]++;
    }
    return out;
  }

  function chi2(observed: Float64Array): number {
    let stat = 0;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        for (let c = 0; c < n; c++) {
          const e = samples * P[0][a] * P[a][b] * P[b][c];
          stat += (observed[a * 16 + b * 4 + c] - e) ** 2 / e;
        }
      }
    }
    return stat;
  }

  it.each([
    [1, 2],
    [3, 2],
    [4, 3],
  ])('%i drafts of γ = %i', (drafts, gamma) => {
    expect(chi2(counts(drafts, gamma, Q, 1))).toBeLessThan(critical);
  });

  it('4 drafts, the first of γ = 3 and the others of 1', () => {
    expect(chi2(counts(4, 3, Q, 2, 1))).toBeLessThan(critical);
  });

  it('detects drafts tested against a q they were not drawn from', () => {
    const wrong = Q.map((row) => [...row].reverse());
    expect(chi2(counts(3, 2, wrong, 1))).toBeGreaterThan(5 * critical);
  });
});

describe('the target scores a token tree in one pass', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
  const prompt = [5, 9, 2, 7];
  const drafts = [
    [3, 8, 1],
    [3, 4, 4],
    [11, 8, 1],
  ];
  const tree = buildTokenTree(6, drafts);

  it('each row\'s logits equal a plain forward over its branch', async () => {
    const cache = target.createCache();
    target.forward(prompt, cache, 1).dispose();
    const logits = await target.forwardTree(Tensor.from(dev, Int32Array.from(tree.tokens), [tree.tokens.length]), cache, tree).read();
    cache.dispose();
    for (let row = 0; row < tree.tokens.length; row++) {
      const branch = tree.tokens.filter((_, r) => (tree.ancestors[row] >> r) & 1);
      const plain = target.createCache();
      const expected = await target.forward([...prompt, ...branch], plain, 1).read();
      plain.dispose();
      expectClose(logits.subarray(row * 24, (row + 1) * 24), expected, 1e-4, 1e-4);
    }
  });

  it('refuses a layout that does not match its rows, or a tree past 32 rows, before recording anything', async () => {
    const cache = target.createCache();
    const ids = (n: number) => Tensor.from(dev, new Int32Array(n), [n]);
    expect(() => target.forwardTree(ids(3), cache, { depths: [0, 1], ancestors: [1, 3] })).toThrow(/3 rows needs 3 depths/);
    expect(() => target.forwardTree(ids(2), cache, { depths: [0, 2], ancestors: [1, 3] })).toThrow(/each at most its row/);
    const chain = (n: number) => ({ depths: [...Array(n).keys()], ancestors: [...Array(n).keys()].map((i) => 2 ** (i + 1) - 1) });
    expect(() => target.forwardTree(ids(33), cache, chain(33))).toThrow(/33 rows exceeds 32/);
    expect(cache.length).toBe(0);
    cache.dispose();
  });

  it('after keeping one branch, the cache continues as if that branch had been decoded plainly', async () => {
    const cache = target.createCache();
    target.forward(prompt, cache, 1).dispose();
    const base = cache.length;
    target.forwardTree(Tensor.from(dev, Int32Array.from(tree.tokens), [tree.tokens.length]), cache, tree).dispose();
    const rows = tree.rowOf[2].slice(0, 2); // draft 2's first two tokens: 11 8
    cache.keep(base + 1, rows.map((r) => base + r));
    expect(cache.length).toBe(base + 3);
    const next = await target.forward([5], cache, 1).read();
    cache.dispose();
    const plain = target.createCache();
    const expected = await target.forward([...prompt, 6, 11, 8, 5], plain, 1).read();
    plain.dispose();
    expectClose(next, expected, 1e-4, 1e-4);
  });
});

describe('generation with several drafts per target pass', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 11, scale: 1.0 });
  // Tokens 2 and 3: the third often comes from the pass after a tree's, so it also reads the kept branch's cache.
  const joint = await exactJoint(target, 1);

  it.each([
    ['T = 1, block-causal', { attention: 'block-causal' as const }, false, undefined],
    ['T = 1, bidirectional', { attention: 'bidirectional' as const }, false, undefined],
    ['through a draft head', {}, true, undefined],
    ['through a draft head, branches of 1', {}, true, 1],
    ['through a draft head from the second position (the backbone draws the first of each draft)', { headStart: 1 }, true, undefined],
  ])('is exact: diffusion drafter %s, 3 drafts of γ = 2 (chi-square on the second and third tokens)', async (_, options, draftHead, branchLength) => {
    // Small weights: the drafts are accepted about half the time, so branches other than the first are kept too.
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 0.1, draftHead }), options);
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2, drafts: 3, branchLength, maxNewTokens: 6 }, 1), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(CHI2_35_999);
    drafter.dispose();
    drafter.model.dispose();
  }, 400_000);

  // A drafter with small weights proposes nearly uniformly: often wrong, so a second try at a node pays.
  it('branches shorter than the first draft take fewer rows; the drafts\' head chains step together (one head step per position)', async () => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 0.1, draftHead: true }));
    const run = async (branchLength?: number) => {
      const { stats } = await generate(target, null, { prompt: [2], maxNewTokens: 5, seed: 3, method: 'specdiff', drafter, gamma: 4, drafts: 3, branchLength, stopAtEos: false }).result();
      // The first pass drafts the full tree: its rows are the pending token and the drafts' distinct prefixes.
      return stats;
    };
    const full = await run();
    const short = await run(1);
    expect(short.targetRows).toBeLessThan(full.targetRows);
    // Three chains of up to 4 positions each, stepped together: at most 4 head steps per pass, not 12.
    for (const stats of [full, short]) expect(stats.draftHeadSteps).toBeLessThanOrEqual(4 * stats.targetPasses);
    drafter.dispose();
    drafter.model.dispose();
  }, 400_000);

  it('reports the tree\'s rows and accepts more per pass than one draft of the same drafter', async () => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 13, scale: 0.1 });
    const run = async (drafts: number) => {
      let tokens = 0;
      let passes = 0;
      let rows = 0;
      for (let seed = 0; seed < 40; seed++) {
        const { stats } = await generate(target, null, { prompt: [2], maxNewTokens: 24, seed, method: 'specdiff', drafter: new DiffusionDrafter(mdlm), gamma: 3, drafts, stopAtEos: false }).result();
        tokens += stats.generatedTokens;
        passes += stats.targetPasses;
        rows += stats.targetRows;
      }
      return { perPass: tokens / passes, rowsPerPass: rows / passes };
    };
    const one = await run(1);
    const four = await run(4);
    expect(one.rowsPerPass).toBeLessThanOrEqual(4);
    expect(four.rowsPerPass).toBeGreaterThan(one.rowsPerPass);
    expect(four.rowsPerPass).toBeLessThanOrEqual(13);
    expect(four.perPass).toBeGreaterThan(one.perPass);
  }, 400_000);

  it('rejects what a tree cannot take: an AR drafter, a confidence cutoff, a tree past 32 rows', async () => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0 });
    const opts = { prompt: [2], method: 'specdiff' as const, drafter: new DiffusionDrafter(mdlm) };
    expect(() => generate(target, null, { ...opts, method: 'speculative', drafter: new ARDrafter(target), drafts: 2 })).toThrow(/drafts 2: the ar drafter.*at most 1/);
    expect(() => generate(target, null, { ...opts, drafts: 2, confidenceCutoff: 0.3 })).toThrow(/confidenceCutoff.*drafts 2/);
    expect(() => generate(target, null, { ...opts, drafts: 4, gamma: 8 })).toThrow(/gamma 8 with drafts 4.*at most 7/);
    expect(() => generate(target, null, { ...opts, drafts: 9 })).toThrow(/drafts 9.*at most 8/);
    expect(() => generate(target, null, { ...opts, drafts: 2, steps: 2, gamma: 2 })).toThrow(/drafts 2.*at most 1/);
    expect(() => generate(target, null, { ...opts, drafts: 1.5 })).toThrow(/drafts must be an integer/);
    expect(() => generate(target, null, { ...opts, drafts: 2, gamma: 2, branchLength: 3 })).toThrow(/branchLength 3 exceeds gamma 2/);
    expect(() => generate(target, null, { ...opts, drafts: 4, gamma: 20, branchLength: 4 })).toThrow(/gamma 20 with drafts 4 of 4 after the first.*at most 19/);
  });
});
