// `lab serve-model`: the OpenAI-compatible server over a model folder or a finished stage's model.
import type { Command } from "commander";
import { LabError } from "../../engine/errors.ts";
import { resultsDir } from "./common.ts";

function int(name: string, v: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new LabError(`${name} must be an integer from ${min} to ${max}, got ${v}`);
  }
  return n;
}

/** `lab serve-model --model DIR | --stage KEY [--scheme nf4] [--port N] [--max-batch 8]` */
export function register(program: Command): void {
  program
    .command("serve-model")
    .description(
      "serve a model over OpenAI's HTTP API (/v1/models, /v1/completions, /v1/chat/completions) " +
        "with continuous batching (Ctrl-C stops)",
    )
    .option("--model <dir>", "HF-format model folder (config.json, safetensors, tokenizer.json)")
    .option("--stage <key>", "instead of --model: the model a finished stage left (key or prefix)")
    .option(
      "--scheme <scheme>",
      "load straight into a quantization scheme (int8, nf4, int4-g128, ...)",
    )
    .option("--name <id>", "the model id clients pass (default: the folder's name)")
    .option("--port <n>", "port to listen on (0: any free port)", "8000")
    .option("--host <host>", "address to bind (default 127.0.0.1: this machine only)", "127.0.0.1")
    .option("--max-batch <n>", "sequences decoded together at most", "8")
    .option("--max-waiting <n>", "requests queued behind a full batch before answering 429", "64")
    .option(
      "--max-context <n>",
      "prompt plus completion tokens at most (default: the model's, ≤ 2048)",
    )
    .option("--dtype <dtype>", "float32, bfloat16 or float16", "float32")
    .option("--device <device>", "cpu, cuda or cuda:N", "cpu")
    .action(async (opts, cmd: Command) => {
      if (!opts.model === !opts.stage) throw new LabError("give --model DIR or --stage KEY (one)");
      const port = int("--port", opts.port, 0, 65535);
      const maxBatch = int("--max-batch", opts.maxBatch, 1, 1024);
      const maxWaiting = int("--max-waiting", opts.maxWaiting, 0);
      const maxContext = opts.maxContext ? int("--max-context", opts.maxContext, 2) : undefined;
      const { loadModel } = await import("../../models/mod.ts");
      const { assertFiniteWeights } = await import("../../models/finite_weights.ts");
      const { startModelServer } = await import("../../serve/server.ts");
      const dir = opts.model ??
        (await import("../../serve/stage_model.ts")).stageModelDir(resultsDir(cmd), opts.stage);
      let model;
      try {
        model = loadModel(dir, {
          dtype: opts.dtype,
          device: opts.device,
          quantize: opts.scheme,
        });
      } catch (e) {
        throw e instanceof LabError ? e : new LabError((e as Error).message);
      }
      try {
        assertFiniteWeights(model);
        const server = startModelServer({
          model,
          modelName: opts.name,
          port,
          hostname: opts.host,
          maxBatch,
          maxWaiting,
          maxContext,
        });
        // One line a supervisor (serve_bench) waits for: the address and the model id.
        console.log(`serving ${server.modelName} on ${server.url} (Ctrl-C stops)`);
        const stop = () => server.close();
        Deno.addSignalListener("SIGINT", stop);
        Deno.addSignalListener("SIGTERM", stop);
        try {
          await server.finished;
        } finally {
          Deno.removeSignalListener("SIGINT", stop);
          Deno.removeSignalListener("SIGTERM", stop);
        }
      } finally {
        model.dispose();
      }
    });
}
