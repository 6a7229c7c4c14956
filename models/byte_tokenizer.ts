// A byte-level BPE tokenizer.json (GPT-2 byte alphabet, no merges) with
// <pad>/<s>/</s> specials: any text round-trips, and standard HF libraries load it.

/** Ids of the special tokens of the byte-level tokenizer. */
export const BYTE_SPECIALS = { pad: 0, bos: 1, eos: 2 } as const;
/** Id of byte 0; byte b has id BYTE_OFFSET + b. */
export const BYTE_OFFSET = 3;
/** Vocabulary size of the byte-level tokenizer. */
export const BYTE_VOCAB = BYTE_OFFSET + 256;

/** GPT-2's reversible map from bytes to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
}

function added(id: number, content: string) {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/** The tokenizer.json object. */
export function byteLevelTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { "<pad>": 0, "<s>": 1, "</s>": 2 };
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = BYTE_OFFSET + b));
  const byteLevel = {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(0, "<pad>"), added(1, "<s>"), added(2, "</s>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** The matching tokenizer_config.json, with a small chat template. */
export function byteLevelTokenizerConfig(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    pad_token: "<pad>",
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    chat_template: "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n" +
      "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
  };
}
