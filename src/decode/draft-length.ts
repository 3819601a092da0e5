/**
 * Adaptive draft length. Where the target's text is predictable (greedy decoding of a small
 * model soon repeats itself) the drafter gets whole drafts right, and a longer draft then costs
 * one more verify row per token where it saves a whole target pass; where it is not, most of a
 * long draft is rejected and its rows are wasted. So: after a draft the target accepts whole,
 * the next one drafts twice the verify's rows (γ → 2γ + 1), up to `max`; after any rejection it
 * is back at `base`. The length depends only on verdicts already made, never on the draft being
 * judged, so the output distribution stays the target's.
 */
export interface DraftLength {
  /** Length after a rejection and at the start. */
  base: number;
  /** Longest draft (= base: a fixed length). */
  max: number;
}

/** A schedule from `base` growing to `max` (a max below base, or none, keeps the length fixed). */
export function draftLength(base: number, max = base): DraftLength {
  return { base, max: Math.max(base, max) };
}

/** The next draft's length after `drafted` tokens were verified and `accepted` of them accepted. */
export function nextDraftLength(current: number, drafted: number, accepted: number, { base, max }: DraftLength): number {
  return accepted < drafted ? base : Math.min(max, 2 * current + 1);
}

/** Every length the schedule can reach from `base` (for autotuning and compiling ahead). */
export function draftLengths({ base, max }: DraftLength): number[] {
  const out = [base];
  while (out[out.length - 1] < max) out.push(Math.min(max, 2 * out[out.length - 1] + 1));
  return out;
}

/**
 * The drafts the schedule makes, each with how many tokens the verification before it can have
 * added (for autotuning a drafter with a cache): 1..base + 1 before a base-length draft; before a
 * longer one the whole draft before it plus the target's token, and before the longest also a
 * whole draft of its own length (inside a loop it repeats). A base draft that follows a long
 * rejected one adds more; those rarer shapes run untuned.
 */
export function draftShapes(lengths: DraftLength): Array<{ gamma: number; added: number[] }> {
  const all = draftLengths(lengths);
  return all.map((gamma, i) => ({
    gamma,
    added: i === 0 ? Array.from({ length: gamma + 1 }, (_, j) => j + 1) : i < all.length - 1 ? [all[i - 1] + 1] : [all[i - 1] + 1, gamma + 1],
  }));
}
