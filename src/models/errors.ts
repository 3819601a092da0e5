/** Errors of model inputs. */

/** The input does not fit the model's context (or a cache's capacity). */
export class ContextError extends Error {
  override name = 'ContextError';
}

export function checkTokenIds(ids: ArrayLike<number>, vocabSize: number, where: string): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new RangeError(`${where}: token id ${t} at position ${i} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
}
