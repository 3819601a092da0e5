import { describe, expect, it } from 'vitest';
import { draftLength, draftLengths, draftShapes, nextDraftLength } from '../src/decode/draft-length.js';

describe('adaptive draft length', () => {
  const lengths = { base: 6, max: 31 };

  it('doubles the verify rows (γ → 2γ + 1) after a draft accepted whole, up to the maximum', () => {
    expect(nextDraftLength(6, 6, 6, lengths)).toBe(13);
    expect(nextDraftLength(13, 13, 13, lengths)).toBe(27);
    expect(nextDraftLength(27, 27, 27, lengths)).toBe(31);
    expect(nextDraftLength(31, 31, 31, lengths)).toBe(31);
  });

  it('returns to the base length after any rejection', () => {
    expect(nextDraftLength(27, 27, 26, lengths)).toBe(6);
    expect(nextDraftLength(6, 6, 0, lengths)).toBe(6);
  });

  it('grows after a draft shortened by the end of the output, if accepted whole', () => {
    expect(nextDraftLength(13, 4, 4, lengths)).toBe(27);
  });

  it('stays fixed when the maximum is the base', () => {
    expect(nextDraftLength(4, 4, 4, { base: 4, max: 4 })).toBe(4);
    expect(draftLengths({ base: 4, max: 4 })).toEqual([4]);
  });

  it('lists every length the schedule reaches', () => {
    expect(draftLengths(lengths)).toEqual([6, 13, 27, 31]);
    expect(draftLengths({ base: 3, max: 15 })).toEqual([3, 7, 15]);
  });

  it('tunes a base draft after 1..γ + 1 added tokens, a longer one after the whole draft before it, the longest also after itself', () => {
    expect(draftShapes({ base: 2, max: 11 })).toEqual([
      { gamma: 2, added: [1, 2, 3] },
      { gamma: 5, added: [3] },
      { gamma: 11, added: [6, 12] },
    ]);
  });

  it('reads a maximum below the base, or none, as a fixed length', () => {
    expect(draftLength(6, 0)).toEqual({ base: 6, max: 6 });
    expect(draftLength(6)).toEqual({ base: 6, max: 6 });
    expect(draftLength(4, 31)).toEqual({ base: 4, max: 31 });
  });
});
