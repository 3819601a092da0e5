import { describe, expect, it } from 'vitest';
import { acceptedPrefix, acceptedPrefixGreedy, residual, verifiedLength } from '../src/decode/accept.js';
import { Rng } from '../src/decode/rng.js';
import { unmaskPlan } from '../src/decode/schedule.js';

/** Output distribution of one speculative step by enumeration: draft x ~ q, u on a fine grid. */
function outputDistribution(p: number[], q: number[], rule = acceptedPrefix, K = 20000): number[] {
  const out = new Array(p.length).fill(0);
  const r = residual(p, q);
  for (let x = 0; x < q.length; x++) {
    if (q[x] === 0) continue;
    let accepted = 0;
    for (let k = 0; k < K; k++) accepted += rule({ p: [p[x]], q: [q[x]], u: [(k + 0.5) / K] });
    const a = accepted / K;
    out[x] += q[x] * a;
    for (let y = 0; y < p.length; y++) out[y] += q[x] * (1 - a) * r[y];
  }
  return out;
}

function randomDist(n: number, rng: Rng, zeros = 0): number[] {
  const v = Array.from({ length: n }, (_, i) => (i < zeros ? 0 : rng.uniform() ** 3));
  const s = v.reduce((a, b) => a + b, 0);
  return v.map((x) => x / s);
}

describe('acceptance rule', () => {
  it('leaves the target distribution exact for random small p and q (by enumeration)', () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 50; trial++) {
      const n = 2 + (trial % 4);
      const p = randomDist(n, rng, trial % 3 === 0 ? 1 : 0);
      const q = randomDist(n, rng);
      const out = outputDistribution(p, q);
      out.forEach((v, i) => expect(Math.abs(v - p[i])).toBeLessThan(2e-4));
    }
  });

  it('a wrong rule (accept iff q ≤ p, never by chance) is caught by the same enumeration', () => {
    const wrong = ({ p, q }: { p: ArrayLike<number>; q: ArrayLike<number> }) => (q[0] <= p[0] ? 1 : 0);
    const p = [0.5, 0.3, 0.2];
    const q = [0.2, 0.5, 0.3];
    const out = outputDistribution(p, q, wrong);
    expect(Math.max(...out.map((v, i) => Math.abs(v - p[i])))).toBeGreaterThan(0.05);
  });

  it('accepts a prefix and stops at the first rejection', () => {
    expect(acceptedPrefix({ p: [0.5, 0.1, 0.9], q: [0.4, 0.9, 0.1], u: [0.99, 0.5, 0] })).toBe(1);
    expect(acceptedPrefix({ p: [0.5, 0.1], q: [0.4, 0.2], u: [0.99, 0.49] })).toBe(2);
    expect(acceptedPrefix({ p: [0, 0.5], q: [0.3, 0.1], u: [0, 0] })).toBe(0);
  });

  it('greedy acceptance stops where the draft leaves the target argmax', () => {
    expect(acceptedPrefixGreedy([4, 5, 6], [4, 5, 7, 1])).toBe(2);
    expect(acceptedPrefixGreedy([4, 5, 6], [4, 5, 6, 1])).toBe(3);
    expect(acceptedPrefixGreedy([1], [2, 1])).toBe(0);
  });

  it('the residual is max(0, p − q) normalised', () => {
    expect(Array.from(residual([0.5, 0.3, 0.2], [0.2, 0.5, 0.3]))).toEqual([1, 0, 0]);
  });

  it('a confidence cutoff verifies the draft up to and including its first unsure token', () => {
    expect(verifiedLength([0.9, 0.8, 0.3, 0.95], 0.5)).toBe(3);
    expect(verifiedLength([0.2, 0.9], 0.5)).toBe(1);
    expect(verifiedLength([0.9, 0.5, 0.6], 0.5)).toBe(3); // at the cutoff is sure enough
    expect(verifiedLength([0.1, 0.2], 0)).toBe(2);
  });
});

describe('unmasking schedules', () => {
  it('left-to-right fills contiguous blocks in order and every position once', () => {
    expect(unmaskPlan('left-to-right', 7, 3, new Rng(1))).toEqual([[0, 1], [2, 3], [4, 5, 6]]);
    expect(unmaskPlan('left-to-right', 3, 8, new Rng(1))).toEqual([[0], [1], [2]]);
  });

  it('random fills every position exactly once over the steps', () => {
    for (let seed = 0; seed < 20; seed++) {
      const plan = unmaskPlan('random', 12, 4, new Rng(seed));
      expect(plan.length).toBe(4);
      expect(plan.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    }
  });
});

describe('Rng', () => {
  it('reproduces a sequence from a seed and differs across seeds', () => {
    const a = new Rng(42).uniforms(5);
    expect(new Rng(42).uniforms(5)).toEqual(a);
    expect(new Rng(43).uniforms(5)).not.toEqual(a);
    for (const u of new Rng(1).uniforms(1000)) expect(u >= 0 && u < 1).toBe(true);
  });
});
