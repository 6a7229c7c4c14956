// Token ids to streamed text: the new text of each token, held back while it could still be
// the start of a stop string or half of a UTF-8 character, and cut at a stop string.
import type { TextTokenizer } from "../models/tokenizer.ts";

/** Incremental detokenizer with stop strings. */
export class TextStreamer {
  readonly #tokenizer: TextTokenizer;
  readonly #stops: readonly string[];
  readonly #ids: number[] = [];
  #emitted = 0;
  #text = "";
  /** Whether a stop string ended the text. */
  stopped = false;

  constructor(tokenizer: TextTokenizer, stops: readonly string[]) {
    this.#tokenizer = tokenizer;
    this.#stops = stops;
  }

  /** The text so far (cut before a stop string once one matched). */
  get text(): string {
    return this.#text;
  }

  /** Adds a token; returns the text that is now safe to send. */
  push(id: number): string {
    if (this.stopped) return "";
    this.#ids.push(id);
    const full = this.#tokenizer.decode(this.#ids);
    const cut = this.#stopAt(full);
    if (cut >= 0) {
      this.stopped = true;
      this.#text = full.slice(0, cut);
      return this.#take(cut);
    }
    this.#text = full;
    return this.#take(full.length - this.#holdBack(full));
  }

  /** The text held back so far (call at the end). */
  flush(): string {
    return this.#take(this.#text.length);
  }

  #take(end: number): string {
    if (end <= this.#emitted) return "";
    const out = this.#text.slice(this.#emitted, end);
    this.#emitted = end;
    return out;
  }

  #stopAt(full: string): number {
    let best = -1;
    for (const s of this.#stops) {
      const i = full.indexOf(s, Math.max(0, this.#emitted - s.length));
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }

  /** Characters at the end that may still change: a partial character or a stop's prefix. */
  #holdBack(full: string): number {
    let hold = 0;
    while (hold < full.length && full[full.length - 1 - hold] === "\uFFFD") hold++;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, full.length); k > hold; k--) {
        if (full.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
