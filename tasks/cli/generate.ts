// `lab generate`: text from a model folder, for a quick look at a model.
import type { Command } from "commander";
import { LabError } from "../../engine/errors.ts";

function num(
  name: string,
  v: string | undefined,
  check: (n: number) => boolean,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new LabError(`${name} got an invalid value: ${v}`);
  return n;
}

/** `lab generate --model DIR --prompt "…"` */
export function register(program: Command): void {
  program
    .command("generate")
    .description("generate text from a model folder, streaming it, then print tokens/s")
    .requiredOption(
      "--model <dir>",
      "HF-format model folder (config.json, safetensors, tokenizer.json)",
    )
    .requiredOption("--prompt <text>", "the prompt")
    .option("--max-new-tokens <n>", "tokens to generate at most", "64")
    .option("--dtype <dtype>", "float32, bfloat16 or float16", "float32")
    .option("--device <device>", "cpu, cuda or cuda:N", "cpu")
    .option("--temperature <t>", "0 = greedy", "0")
    .option("--top-k <k>", "sample among the k most likely tokens")
    .option("--top-p <p>", "sample among the most likely tokens holding mass p")
    .option("--seed <n>", "sampler seed", "0")
    .option("--chat", "wrap the prompt with the tokenizer's chat template")
    .action(async (opts) => {
      const { loadModel } = await import("../../models/mod.ts");
      const maxNewTokens = num(
        "--max-new-tokens",
        opts.maxNewTokens,
        (n) => Number.isInteger(n) && n > 0,
      )!;
      const temperature = num("--temperature", opts.temperature, (n) => n >= 0);
      const topK = num("--top-k", opts.topK, (n) => Number.isInteger(n) && n >= 0);
      const topP = num("--top-p", opts.topP, (n) => n > 0 && n <= 1);
      const seed = num("--seed", opts.seed, (n) => Number.isInteger(n) && n >= 0);
      const { assertFiniteWeights } = await import("../../models/finite_weights.ts");
      const { checkTokenIds } = await import("../../models/limits.ts");
      let model;
      try {
        model = loadModel(opts.model, { dtype: opts.dtype, device: opts.device });
      } catch (e) {
        throw new LabError((e as Error).message);
      }
      try {
        assertFiniteWeights(model);
        const tok = model.tokenizer;
        if (!tok) {
          throw new LabError(`${opts.model} has no tokenizer.json; cannot encode a text prompt`);
        }
        const prompt = opts.chat
          ? tok.applyChatTemplate([{ role: "user", content: opts.prompt }])
          : opts.prompt;
        const ids = tok.encode(prompt, { addSpecialTokens: !opts.chat });
        checkTokenIds(model, ids, "the prompt");
        const enc = new TextEncoder();
        const out: number[] = [];
        let printed = "";
        const res = model.generate([ids], {
          maxNewTokens,
          temperature,
          topK,
          topP,
          seed,
          onToken: (t) => {
            out.push(t[0]);
            const text = tok.decode(out);
            // Hold back a partial UTF-8 character until its last byte arrives.
            if (text.endsWith("\uFFFD")) return;
            Deno.stdout.writeSync(enc.encode(text.slice(printed.length)));
            printed = text;
          },
        });
        const rest = tok.decode(out).slice(printed.length);
        console.log(rest);
        const decodeSteps = Math.max(0, res.steps - 1);
        const prefillTps = ids.length / (res.prefillMs / 1000);
        const decodeTps = decodeSteps > 0 ? decodeSteps / (res.decodeMs / 1000) : 0;
        console.log(
          `prefill: ${ids.length} tokens, ${
            prefillTps.toFixed(1)
          } tokens/s · decode: ${decodeSteps} ` +
            `tokens, ${decodeTps.toFixed(1)} tokens/s${
              res.stopped[0] ? " (stopped at a stop token)" : ""
            }`,
        );
      } finally {
        model.dispose();
      }
    });
}
