// A seeded slice of `npm run fuzz`: mutated checkpoint folders and tokenizer files each end in a load or a typed
// error, within the hang limit, with no GPU bytes left behind.
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../bench/lib/fuzz.js';
import { getDevice } from './helpers/device.js';

describe('fuzzing model loading (a slice of npm run fuzz)', () => {
  it.each([1, 2, 3])('seed %d: 400 mutated folders end in a load or a typed error, with no hang and no leak', async (seed) => {
    const counts = await runFuzz(await getDevice(), { seed, cases: 400, hangMs: 5000 });
    expect(counts.examples).toEqual({ other: [], hangs: [], leaks: [] });
    expect([counts.other, counts.hangs, counts.leakedBytes]).toEqual([0, 0, 0]);
    expect(counts.typed).toBeGreaterThan(counts.cases / 2);
  });
});
