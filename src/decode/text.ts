/**
 * Incremental text of a generation: decodes token by token without splitting UTF-8 characters,
 * and holds back the text that could still become a stop sequence.
 */
import type { StreamDecoder, Tokenizer } from '../models/tokenizer.js';

export class TextStreamer {
  /** Everything emitted so far (without a stop sequence). */
  text = '';
  private decoder: StreamDecoder;
  private held = '';
  private stopped = false;

  constructor(
    tokenizer: Tokenizer,
    private readonly stops: string[],
  ) {
    this.decoder = tokenizer.createStreamDecoder();
  }

  push(ids: number[]): { text: string; stopped: boolean } {
    if (this.stopped) return { text: '', stopped: true };
    for (const id of ids) this.held += this.decoder.push(id);
    return this.release(false);
  }

  flush(): string {
    if (this.stopped) return '';
    this.held += this.decoder.flush();
    return this.release(true).text;
  }

  private release(final: boolean): { text: string; stopped: boolean } {
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0) {
        const out = this.held.slice(0, at);
        this.text += out;
        this.held = '';
        this.stopped = true;
        return { text: out, stopped: true };
      }
    }
    // Keep back the longest suffix that is a prefix of some stop sequence.
    let keep = 0;
    if (!final) {
      for (const s of this.stops) {
        for (let k = Math.min(s.length - 1, this.held.length); k > keep; k--) {
          if (this.held.endsWith(s.slice(0, k))) {
            keep = k;
            break;
          }
        }
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    this.text += out;
    return { text: out, stopped: false };
  }
}
