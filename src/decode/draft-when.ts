/**
 * A staged start's gate (GenerateOptions.draftWhen): a generation takes plain target steps until the promise
 * settles, and then drafts, with the drafter it brought when none was given at the start. A function is called
 * only once the first token is out, so that what it starts (loading the drafter, compiling) does not delay that
 * token. docs/architecture.md, "Staged start".
 */
import type { Drafter } from './drafter.js';
import type { Method } from './options.js';

export type DraftWhen = PromiseLike<unknown> | (() => PromiseLike<unknown>);

export class DraftingGate {
  /** The promise settled: the generation may draft. */
  ready: boolean;
  private started: boolean;
  private failure: { error: unknown } | null = null;
  private value: unknown;
  private closed = false;
  private settledOnce: Promise<void> = Promise.resolve();

  /** `disposeLate`: free a drafter it brings that the generation never adopts (GenerateOptions.disposeDrafter). */
  constructor(
    private readonly when: DraftWhen | undefined,
    private readonly disposeLate: boolean,
  ) {
    this.ready = when === undefined;
    this.started = typeof when !== 'function';
    if (when !== undefined && typeof when !== 'function') this.settle(when);
  }

  /** After each emitted chunk: the first one starts a function's work. */
  tokenOut(): void {
    if (this.started) return;
    this.started = true;
    const start = this.when as () => PromiseLike<unknown>;
    this.settle(new Promise((resolve) => resolve(start())));
  }

  /** Resolves once the promise has settled (ready, or check() throws its rejection); at once without one. */
  settled(): Promise<void> {
    return this.settledOnce;
  }

  /** Throws the rejection, if the promise was rejected. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  /** The drafter it resolved with, which the generation now owns as it would a given one. */
  adopt(method: Method): Drafter {
    const late = this.value as Drafter | undefined;
    if (!late || typeof late.draft !== 'function') throw new RangeError(`method '${method}' needs a drafter: draftWhen resolved without one`);
    if (late.targetFeatures) throw new RangeError("a drafter that reads the target's hidden states must be given at the start, not by draftWhen");
    this.value = undefined;
    return late;
  }

  /** The generation has ended: a drafter it brought and nobody adopted, now or when it arrives, is freed. */
  close(): void {
    this.closed = true;
    this.disposeUnadopted();
  }

  private settle(p: PromiseLike<unknown>): void {
    this.settledOnce = Promise.resolve(p).then(
      (v) => {
        this.value = v;
        this.ready = true;
        if (this.closed) this.disposeUnadopted();
      },
      (error: unknown) => void (this.failure = { error }),
    );
  }

  private disposeUnadopted(): void {
    const late = this.value as Drafter | undefined;
    if (this.disposeLate && late && typeof late.draft === 'function') late.dispose();
    this.value = undefined;
  }
}
