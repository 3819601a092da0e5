import { describe, expect, it } from 'vitest';
import { acceptedBlock, acceptedPrefix, acceptedPrefixGreedy, blockStopChances, prefixWeights, residual, verifiedLength } from '../src/decode/accept.js';
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

/**
 * One verification of a draft of G tokens over a vocabulary of V, by enumeration: the target's and the drafter's
 * distributions depend on the whole prefix (P[prefix], Q[prefix]). Returns the distribution of the first G + 1
 * tokens when the target continues after what the verification emits, and the expected number of drafted
 * tokens kept: exact, with the rule given as the chance of keeping each number of tokens.
 */
type Table = Map<string, number[]>;
type Rule = (P: Table, Q: Table, x: number[]) => { keep: number[]; residual: (t: number) => number[] };

function verifyByEnumeration(P: Table, Q: Table, V: number, G: number, rule: Rule): { joint: Map<string, number>; kept: number } {
  const joint = new Map<string, number>();
  let kept = 0;
  const add = (seq: number[], pr: number): void => {
    if (seq.length === G + 1) return void joint.set(seq.join(), (joint.get(seq.join()) ?? 0) + pr);
    const p = P.get(seq.join())!;
    for (let y = 0; y < V; y++) if (p[y] > 0) add([...seq, y], pr * p[y]);
  };
  const drafts = (prefix: number[], qx: number): void => {
    if (prefix.length < G) {
      const q = Q.get(prefix.join())!;
      for (let x = 0; x < V; x++) if (q[x] > 0) drafts([...prefix, x], qx * q[x]);
      return;
    }
    const { keep, residual: res } = rule(P, Q, prefix);
    keep.forEach((chance, t) => {
      if (chance <= 0) return;
      kept += qx * chance * t;
      const r = res(t);
      const total = r.reduce((a, b) => a + b, 0);
      r.forEach((v, y) => v > 0 && add([...prefix.slice(0, t), y], (qx * chance * v) / total));
    });
  };
  drafts([], 1);
  return { joint, kept };
}

/** Random prefix-dependent distributions over V tokens for prefixes up to G long, some tokens of p at zero (a top-k). */
function tables(V: number, G: number, rng: Rng): { P: Table; Q: Table } {
  const P: Table = new Map();
  const Q: Table = new Map();
  const visit = (prefix: number[]): void => {
    P.set(prefix.join(), randomDist(V, rng, prefix.length % 2));
    Q.set(prefix.join(), randomDist(V, rng));
    if (prefix.length <= G) for (let x = 0; x < V; x++) visit([...prefix, x]);
  };
  visit([]);
  return { P, Q };
}

/** The per-position numbers a verify reads back: p_i(x_i), q_i(x_i), and each row's weighted residual mass. */
function numbers(P: Table, Q: Table, x: number[]) {
  const p = x.map((v, i) => P.get(x.slice(0, i).join())![v]);
  const q = x.map((v, i) => Q.get(x.slice(0, i).join())![v]);
  const w = prefixWeights(p, q);
  const weighted = (t: number) => P.get(x.slice(0, t).join())!.map((v, y) => Math.max(0, w[t] * v - Q.get(x.slice(0, t).join())![y]));
  const mass = x.map((_, t) => weighted(t).reduce((a, b) => a + b, 0));
  return { p, q, mass, weighted };
}

/** Chances of keeping t = 0..G tokens when position i's uniform u_i decides, scanning from the last. */
function keepChances(h: ArrayLike<number>): number[] {
  const G = h.length;
  return Array.from({ length: G + 1 }, (_, t) => {
    let c = t === 0 ? 1 : h[t - 1];
    for (let j = t + 1; j <= G; j++) c *= 1 - h[j - 1];
    return c;
  });
}

const blockRule: Rule = (P, Q, x) => {
  const n = numbers(P, Q, x);
  return { keep: keepChances(blockStopChances(n)), residual: (t) => (t === x.length ? P.get(x.join())! : n.weighted(t)) };
};

const tokenRule: Rule = (P, Q, x) => {
  const { p, q } = numbers(P, Q, x);
  const a = p.map((v, i) => Math.min(1, v / q[i]));
  const keep = Array.from({ length: x.length + 1 }, (_, t) => a.slice(0, t).reduce((c, v) => c * v, 1) * (t < x.length ? 1 - a[t] : 1));
  const residualAt = (t: number) => P.get(x.slice(0, t).join())!.map((v, y) => Math.max(0, v - Q.get(x.slice(0, t).join())![y]));
  return { keep, residual: (t) => (t === x.length ? P.get(x.join())! : residualAt(t)) };
};

function targetJoint(P: Table, V: number, n: number): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (seq: number[], pr: number): void => {
    if (seq.length === n) return void out.set(seq.join(), pr);
    const p = P.get(seq.join())!;
    for (let y = 0; y < V; y++) if (p[y] > 0) walk([...seq, y], pr * p[y]);
  };
  walk([], 1);
  return out;
}

function largestGap(a: Map<string, number>, b: Map<string, number>): number {
  let gap = 0;
  for (const k of new Set([...a.keys(), ...b.keys()])) gap = Math.max(gap, Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0)));
  return gap;
}

describe('block verification', () => {
  const [V, G] = [4, 3];

  it('leaves the target distribution of the first γ + 1 tokens exact (by enumeration, prefix-dependent p and q)', () => {
    const rng = new Rng(21);
    for (let trial = 0; trial < 6; trial++) {
      const { P, Q } = tables(V, G, rng);
      const { joint } = verifyByEnumeration(P, Q, V, G, blockRule);
      expect(largestGap(joint, targetJoint(P, V, G + 1)), `trial ${trial}`).toBeLessThan(1e-12);
    }
  });

  it('keeps at least as many drafted tokens as the token rule, on average over the drafts', () => {
    const rng = new Rng(22);
    for (let trial = 0; trial < 6; trial++) {
      const { P, Q } = tables(V, G, rng);
      const block = verifyByEnumeration(P, Q, V, G, blockRule).kept;
      const token = verifyByEnumeration(P, Q, V, G, tokenRule);
      expect(largestGap(token.joint, targetJoint(P, V, G + 1))).toBeLessThan(1e-12);
      expect(block, `trial ${trial}`).toBeGreaterThanOrEqual(token.kept - 1e-12);
    }
  });

  it('is caught by the same enumeration when its stop chances are paired with the token rule\'s residuals', () => {
    const { P, Q } = tables(V, G, new Rng(23));
    const wrong: Rule = (P2, Q2, x) => ({ keep: blockRule(P2, Q2, x).keep, residual: tokenRule(P2, Q2, x).residual });
    expect(largestGap(verifyByEnumeration(P, Q, V, G, wrong).joint, targetJoint(P, V, G + 1))).toBeGreaterThan(1e-5);
  });

  it('keeps the tokens up to the last position whose uniform falls below its stop chance', () => {
    // p/q = 2, 0.25, 2: weights 1, 0.25, 0.5; h_3 = w_3 = 0.5.
    const input = { p: [0.4, 0.1, 0.4], q: [0.2, 0.4, 0.2], mass: [0, 0.3, 0.1] };
    const h = blockStopChances(input);
    expect(h[2]).toBeCloseTo(0.5, 12);
    expect(h[1]).toBeCloseTo(0.1 / (0.1 + 1 - 0.25), 12);
    expect(h[0]).toBeCloseTo(1, 12); // w_1 = 1: the first token is kept whenever the second is not
    expect(acceptedBlock({ ...input, u: [0.9, 0.9, 0.4] })).toBe(3);
    expect(acceptedBlock({ ...input, u: [0.9, 0.05, 0.6] })).toBe(2);
    expect(acceptedBlock({ ...input, u: [0.9, 0.9, 0.6] })).toBe(1);
  });

  it('never stops where the residual that would follow is empty', () => {
    // w_1 = 1 and no residual mass at row 1 (p_2 = q_2): the chance of stopping after one token is 0.
    const h = blockStopChances({ p: [0.4, 0.3], q: [0.2, 0.3], mass: [0, 0] });
    expect(h[0]).toBe(0);
    expect(h[1]).toBe(1);
  });

  it('a draft token the drafter gave no probability passes iff the target gives it some, as in the token rule', () => {
    expect(Array.from(prefixWeights([0.3, 0], [0, 0]))).toEqual([1, 1, 0]);
  });
});
