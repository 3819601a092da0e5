/** Tensor lifetime: scopes that free the intermediates a computation created and did not return. */

export interface Disposable {
  dispose(): void;
}

export class Scopes {
  private open: Array<Set<Disposable>> = [];

  /** Registers a disposable in the innermost open scope (tensors call this when created). */
  track(t: Disposable): void {
    this.open[this.open.length - 1]?.add(t);
  }

  /** Takes a disposable out of the scope it was created in, so it outlives the scope. */
  untrack(t: Disposable): void {
    for (const s of this.open) s.delete(t);
  }

  /**
   * Runs fn; every tensor created inside and not returned (directly, or in an array/object
   * of tensors) is disposed when it ends.
   */
  scope<T>(fn: () => T): T {
    const set = new Set<Disposable>();
    this.open.push(set);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      // Nothing of a failed scope is returned: free it all.
      this.open.pop();
      for (const t of set) t.dispose();
      throw e;
    }
    this.open.pop();
    const keep = new Set<unknown>();
    collect(result, keep);
    for (const t of set) {
      if (keep.has(t)) this.track(t);
      else t.dispose();
    }
    return result;
  }
}

function collect(v: unknown, out: Set<unknown>): void {
  if (!v || typeof v !== 'object') return;
  out.add(v);
  if (Array.isArray(v)) for (const x of v) collect(x, out);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out);
}
