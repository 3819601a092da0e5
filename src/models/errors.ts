/** Errors of model inputs. */

/** The input does not fit the model's context (or a cache's capacity). */
export class ContextError extends Error {
  override name = 'ContextError';
}

/** Logits held NaN or ±Inf, so no token could be chosen (weights or activations overflowed). */
export class NumericalError extends Error {
  override name = 'NumericalError';
}

/** Sampled ids come back -1 from rows of NaN or ±Inf logits; `who` names the model that produced them. */
export function checkSampledIds(ids: ArrayLike<number>, vocabSize: number, who: string): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!(t >= 0 && t < vocabSize)) {
      throw new NumericalError(`${who}'s logits are not finite (NaN or Inf) at row ${i}: no token could be chosen (got id ${t})`);
    }
  }
}

export function checkTokenIds(ids: ArrayLike<number>, vocabSize: number, where: string): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new RangeError(`${where}: token id ${t} at position ${i} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
}
