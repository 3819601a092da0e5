/**
 * Several drafts verified together as a token tree (SpecInfer, Miao et al. 2024). Drafts that share a
 * prefix share its nodes; the target scores every node in one pass (GPT2.forwardTree), and the
 * verdict walks down from the root. At each node the drafts that reached it offer their next token
 * in turn, each accepted with probability min(1, r(x)/q(x)) against the target's residual r, which
 * starts as p and becomes norm(max(0, r − q)) after each rejection; when none is accepted the target
 * draws from r. The drafts are independent draws of one drafter, so at a node their next tokens are
 * i.i.d. from the same q, and the output is distributed exactly as the target's (SpecInfer's
 * multi-step speculative sampling). Which drafts are shorter is fixed before drawing, so at each row the
 * drafts that offer a token are still i.i.d. draws. Greedy, the walk follows the target's argmax while a
 * child has it.
 */
import type { TokenTreeLayout } from '../models/gpt2.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';

/**
 * The longest first draft a tree of `drafts` fits (with the pending token, at most MAX_TREE_ROWS rows), the
 * others `branchLength` long (default: as long as the first). Infinity for a single draft.
 */
export function longestTreeDraft(drafts: number, branchLength?: number): number {
  if (drafts <= 1) return Infinity;
  const rows = (gamma: number) => 1 + gamma + (drafts - 1) * Math.min(branchLength ?? gamma, gamma);
  let gamma = 0;
  while (rows(gamma + 1) <= MAX_TREE_ROWS) gamma++;
  return gamma;
}

export interface TokenTree extends TokenTreeLayout {
  /** Row i's token (row 0: the pending token the drafts continue). */
  tokens: number[];
  /** Row of draft k's token i. */
  rowOf: number[][];
}

/** The tree of K drafts after `pending` (the first the longest): rows in order of first appearance, draft by draft. */
export function buildTokenTree(pending: number, drafts: readonly (readonly number[])[]): TokenTree {
  const tokens = [pending];
  const depths = [0];
  const ancestors = [1];
  const children = new Map<string, number>();
  const rowOf = drafts.map((draft) => {
    let parent = 0;
    return draft.map((token) => {
      const key = `${parent}:${token}`;
      let row = children.get(key);
      if (row === undefined) {
        row = tokens.length;
        children.set(key, row);
        tokens.push(token);
        depths.push(depths[parent] + 1);
        ancestors.push(ancestors[parent] | (1 << row));
      }
      return (parent = row);
    });
  });
  return { tokens, depths, ancestors: ancestors.map((m) => m >>> 0), rowOf };
}

export interface TreeVerdict {
  /** The draft whose prefix was accepted (the first one, when nothing was). */
  draft: number;
  /** Its tokens accepted. */
  accepted: number;
  /** Rows of the accepted tokens, in order. */
  rows: number[];
  /** The target's token after them. */
  next: number;
}

/** A draft offering its token at a row: draft k's token at `position` (the row's depth). */
export interface Candidate {
  draft: number;
  position: number;
}

/** Per row, the drafts that offer a token there, in the order they are tried: they reach the row and are long enough. */
export function treeCandidates(tree: TokenTree, drafts: readonly (readonly number[])[]): Candidate[][] {
  const out: Candidate[][] = tree.tokens.map(() => []);
  drafts.forEach((draft, k) => draft.forEach((_, position) => out[position === 0 ? 0 : tree.rowOf[k][position - 1]].push({ draft: k, position })));
  return out;
}

/**
 * The walk down the tree: at each row its candidates are tested in turn (`accepts(row, j)`, called in
 * that order and only until one passes); the first that passes leads to its token's row, and when none
 * does the target's token is `next(row)`.
 */
function walk(tree: TokenTree, candidates: Candidate[][], accepts: (row: number, j: number) => boolean, next: (row: number) => number): TreeVerdict {
  let row = 0;
  let chosen = 0;
  const rows: number[] = [];
  for (;;) {
    const j = candidates[row].findIndex((_, i) => accepts(row, i));
    if (j < 0) return { draft: chosen, accepted: rows.length, rows, next: next(row) };
    const { draft, position } = candidates[row][j];
    chosen = draft;
    row = tree.rowOf[draft][position];
    rows.push(row);
  }
}

/**
 * Sampled verdict from the numbers the GPU computed (ops.residualChain): `probe(row, j)` is the
 * residual's and q's probability of candidate j's token, (r_j(x), q(x)); `draw(row)` the target's
 * draw from the row's last residual; `uniform()` a fresh uniform in [0, 1) per test.
 */
export function acceptTreeProbed(
  tree: TokenTree,
  candidates: Candidate[][],
  probe: (row: number, j: number) => readonly [number, number],
  draw: (row: number) => number,
  uniform: () => number,
): TreeVerdict {
  return walk(
    tree,
    candidates,
    (row, j) => {
      const [r, q] = probe(row, j);
      // Accept with probability min(1, r(x)/q(x)), written without division.
      return q <= r || uniform() * q < r;
    },
    draw,
  );
}

/**
 * The same verdict from whole distributions, on the CPU (the reference the GPU path is tested
 * against). `p(row)`: the target's distribution at a tree row (after temperature and filtering);
 * `q(k, i)`: the distribution draft k's token i was drawn from.
 */
export function acceptTree(
  tree: TokenTree,
  drafts: readonly (readonly number[])[],
  p: (row: number) => ArrayLike<number>,
  q: (draft: number, position: number) => ArrayLike<number>,
  uniform: () => number,
): TreeVerdict {
  const candidates = treeCandidates(tree, drafts);
  // The residual of the row being tested, after the candidates rejected so far.
  let at = -1;
  let r: ArrayLike<number> = [];
  const residual = (row: number) => {
    if (row !== at) [at, r] = [row, p(row)];
    return r;
  };
  return walk(
    tree,
    candidates,
    (row, j) => {
      const { draft, position } = candidates[row][j];
      const x = drafts[draft][position];
      const qk = q(draft, position);
      const rx = residual(row)[x];
      if (qk[x] <= rx || uniform() * qk[x] < rx) return true;
      r = subtractNormalised(r, qk);
      return false;
    },
    (row) => draw(residual(row), uniform()),
  );
}

/** Greedy verdict: `argmax[row]` is the target's most likely token after row. */
export function acceptTreeGreedy(tree: TokenTree, drafts: readonly (readonly number[])[], argmax: ArrayLike<number>): TreeVerdict {
  const candidates = treeCandidates(tree, drafts);
  return walk(
    tree,
    candidates,
    (row, j) => drafts[candidates[row][j].draft][candidates[row][j].position] === argmax[row],
    (row) => argmax[row],
  );
}

/** norm(max(0, r − q)); all zeros when q covers r (a rejection then has probability 0). */
function subtractNormalised(r: ArrayLike<number>, q: ArrayLike<number>): Float64Array {
  const out = new Float64Array(r.length);
  let sum = 0;
  for (let i = 0; i < r.length; i++) sum += out[i] = Math.max(0, r[i] - q[i]);
  if (sum > 0) for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** Inverse-CDF draw from a distribution (the last token with mass when rounding leaves u past the sum). */
function draw(dist: ArrayLike<number>, u: number): number {
  let sum = 0;
  for (let i = 0; i < dist.length; i++) sum += dist[i];
  let target = u * sum;
  let last = -1;
  for (let i = 0; i < dist.length; i++) {
    if (dist[i] <= 0) continue;
    last = i;
    target -= dist[i];
    if (target < 0) return i;
  }
  if (last < 0) throw new RangeError('acceptTree: the target\'s distribution has no mass to draw from');
  return last;
}
