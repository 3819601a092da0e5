import { describe, expect, it } from 'vitest';
import { StatsRecorder } from '../src/decode/stats.js';

describe('generation statistics', () => {
  it('acceptance by draft position: per position, the drafts that long and the share of them accepted up to there', () => {
    const s = new StatsRecorder();
    s.recordDraft(4, 4); // all accepted
    s.recordDraft(4, 1); // the first accepted, the second rejected (the rest never tested)
    s.recordDraft(2, 0);
    const r = s.finish('specdiff', 5, 'length');
    expect(r.draftedByPosition).toEqual([3, 3, 2, 2]);
    expect(r.acceptanceByPosition).toEqual([2 / 3, 1 / 3, 1 / 2, 1 / 2]);
    expect(r.acceptedLengthCounts).toEqual([1, 1, 0, 0, 1]);
    expect(r.draftedTokens).toBe(10);
    expect(r.acceptedTokens).toBe(5);
    expect(r.meanAccepted).toBeCloseTo(5 / 3);
  });

  it('a generation without drafts has empty position statistics', () => {
    const r = new StatsRecorder().finish('ar', 3, 'length');
    expect(r.acceptanceByPosition).toEqual([]);
    expect(r.acceptedLengthCounts).toEqual([]);
  });
});
