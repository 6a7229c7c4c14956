// `deno task bench serve`: the lab's OpenAI-compatible server on the 25M model over loopback:
// saturation throughput with continuous batching (--max-batch 8) vs one request at a time, TTFT
// p99 at half the saturation rate, and served greedy outputs against generate()'s.
import { parseArgs } from "node:util";
import { createTinyModel } from "../models/tiny.ts";
import { loadModel } from "../models/load.ts";
import { syntheticRequests } from "../serve/bench_prompts.ts";
import type { BenchRequest, EndpointOptions } from "../serve/load_client.ts";
import { runAtRate, summarize } from "../serve/load_run.ts";
import { startServerProcess } from "../serve/server_process.ts";
import { loadTokenizer } from "../models/tokenizer.ts";

const SLO = { ttftMs: 1e9, tpotMs: 1e9 };

async function measure(dir: string, maxBatch: number, requests: BenchRequest[], rate: number) {
  const server = await startServerProcess({ modelDir: dir, maxBatch, maxWaiting: 4096 });
  try {
    const o: EndpointOptions = {
      url: server.url,
      model: server.modelName,
      endpoint: "completions",
      ignoreEos: true,
      timeouts: { connectMs: 60_000, firstTokenMs: 600_000, totalMs: 900_000 },
    };
    await runAtRate(o, requests.slice(0, 2), Infinity, { seed: 0 }); // warm-up
    const { results, durationS } = await runAtRate(o, requests, rate, { seed: 1 });
    const failed = results.filter((r) => !r.ok);
    if (failed.length) throw new Error(`${failed.length} requests failed: ${failed[0].error}`);
    return summarize(results, durationS, SLO);
  } finally {
    await server.stop();
  }
}

/** Served greedy completions against generate() on the same prompts. */
async function checkOutputs(dir: string, requests: BenchRequest[]): Promise<string> {
  const server = await startServerProcess({ modelDir: dir, maxBatch: 8, maxWaiting: 64 });
  using model = loadModel(dir);
  try {
    const served = await Promise.all(requests.map(async (r) => {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({
          model: server.modelName,
          prompt: r.prompt,
          max_tokens: r.outputTokens,
          temperature: 0,
        }),
      });
      return (await res.json()).choices[0].text as string;
    }));
    const same = requests.filter((r, i) =>
      model.generate([model.tokenizer!.encode(r.prompt)], { maxNewTokens: r.outputTokens })
        .text![0] === served[i]
    ).length;
    return `${same}/${requests.length}`;
  } finally {
    await server.stop();
  }
}

/** Runs the benchmark. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      requests: { type: "string", default: "32" },
      "prompt-tokens": { type: "string", default: "64" },
      "output-tokens": { type: "string", default: "64" },
    },
  });
  const n = Number(values.requests);
  const dir = Deno.makeTempDirSync({ prefix: "lab-bench-serve-" });
  try {
    createTinyModel({ out: dir, preset: "25m", seed: 0 });
    const tok = loadTokenizer(dir)!;
    const count = (s: string) => tok.encode(s, { addSpecialTokens: false }).length;
    const reqs = syntheticRequests(
      n,
      Number(values["prompt-tokens"]),
      Number(values["output-tokens"]),
      0,
      count,
    );
    console.log(
      `25M model, ${n} requests, ${values["prompt-tokens"]} prompt + ` +
        `${values["output-tokens"]} output tokens each, all sent at once (saturation)`,
    );
    const one = await measure(dir, 1, reqs, Infinity);
    const batched = await measure(dir, 8, reqs, Infinity);
    const row = (name: string, s: typeof one) =>
      console.log(
        `  ${name.padEnd(28)} ${s.requestsPerS.toFixed(2).padStart(7)} req/s ` +
          `${s.outputTokensPerS.toFixed(1).padStart(8)} output tok/s  TTFT p99 ` +
          `${(s.ttft_p99_ms ?? NaN).toFixed(0)} ms  TPOT p50 ${
            (s.tpot_p50_ms ?? NaN).toFixed(1)
          } ms`,
      );
    row("one at a time (--max-batch 1)", one);
    row("continuous batching (8)", batched);
    console.log(
      `  throughput ratio: ${(batched.outputTokensPerS / one.outputTokensPerS).toFixed(2)}× ` +
        "(target ≥ 3×)",
    );
    const half = batched.requestsPerS / 2;
    const atHalf = await measure(dir, 8, reqs, half);
    console.log(
      `  at half the saturation rate (${half.toFixed(2)} req/s, Poisson): TTFT p50 ` +
        `${atHalf.ttft_p50_ms?.toFixed(0)} ms, p99 ${atHalf.ttft_p99_ms?.toFixed(0)} ms; ` +
        `${atHalf.outputTokensPerS.toFixed(1)} output tok/s`,
    );
    const same = await checkOutputs(dir, reqs.slice(0, 8));
    console.log(`  served greedy outputs equal to generate(): ${same}`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
