// tokenizer.json through @huggingface/tokenizers; chat templates from
// tokenizer_config.json through @huggingface/jinja.
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

/** A chat message for applyChatTemplate. */
export interface ChatMessage {
  /** Who speaks, as the chat template expects: usually "system", "user" or "assistant". */
  role: string;
  /** The message text. */
  content: string;
}

/** Text ⇄ token ids for one checkpoint. */
export class TextTokenizer {
  readonly #tok: Tokenizer;
  /** The tokenizer_config.json as read (chat template, special tokens); empty when absent. */
  readonly config: Record<string, unknown>;
  readonly #template: Template | null;
  /** The special tokens config names, as id or null. */
  readonly bosTokenId: number | null;
  /** The id of tokenizer_config's `eos_token`, or null. */
  readonly eosTokenId: number | null;
  /** The id of tokenizer_config's `pad_token`, or null. */
  readonly padTokenId: number | null;

  /** Builds the tokenizer from a parsed tokenizer.json and tokenizer_config.json. */
  constructor(tokenizerJson: Record<string, unknown>, config: Record<string, unknown> = {}) {
    this.#tok = new Tokenizer(tokenizerJson, config);
    this.config = config;
    const tpl = config.chat_template;
    let source: string | null = null;
    if (typeof tpl === "string") source = tpl;
    else if (Array.isArray(tpl)) {
      const d = tpl.find((t) => t?.name === "default") ?? tpl[0];
      source = typeof d?.template === "string" ? d.template : null;
    }
    this.#template = source ? new Template(source) : null;
    const idOf = (key: string): number | null => {
      let v = config[key];
      if (v && typeof v === "object" && "content" in v) v = (v as { content: unknown }).content;
      if (typeof v !== "string") return null;
      return this.#tok.token_to_id(v) ?? null;
    };
    this.bosTokenId = idOf("bos_token");
    this.eosTokenId = idOf("eos_token");
    this.padTokenId = idOf("pad_token");
  }

  /** Token ids of `text`; `addSpecialTokens` applies the post-processor (e.g. BOS). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.#tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Text of `ids`. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.#tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /** Vocabulary size including added tokens. */
  get vocabSize(): number {
    return this.#tok.get_vocab(true).size;
  }

  /** Whether tokenizer_config.json has a chat template. */
  get hasChatTemplate(): boolean {
    return this.#template !== null;
  }

  /** Renders messages with the checkpoint's chat template. */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (!this.#template) {
      throw new Error("this tokenizer has no chat_template in tokenizer_config.json");
    }
    const str = (k: string) => {
      const v = this.config[k];
      if (v && typeof v === "object" && "content" in v) return (v as { content: string }).content;
      return typeof v === "string" ? v : "";
    };
    return this.#template.render({
      messages: messages as ChatMessage[],
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: str("bos_token"),
      eos_token: str("eos_token"),
    });
  }
}

function readJson(path: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The folder's tokenizer (tokenizer.json [+ tokenizer_config.json]), or null without one. */
export function loadTokenizer(dir: string): TextTokenizer | null {
  const base = dir.replace(/\/+$/, "");
  const json = readJson(`${base}/tokenizer.json`);
  if (!json) return null;
  const config = readJson(`${base}/tokenizer_config.json`) ?? {};
  try {
    return new TextTokenizer(json, config);
  } catch (e) {
    throw new Error(`${base}/tokenizer.json could not be loaded: ${(e as Error).message}`);
  }
}
