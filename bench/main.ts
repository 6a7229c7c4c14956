// `deno task bench <name> [args]`: runs one benchmark, which prints ratios against a baseline.
const BENCHES: Record<string, { file: string; what: string }> = {
  ffi: { file: "./ffi.ts", what: "per-op overhead and a large matmul vs Python eager" },
  decode: { file: "./decode.ts", what: "prefill/decode tokens/s vs a PyTorch-eager forward" },
  runner: { file: "./runner.ts", what: "planning and cached runs of a 1,000-node sweep" },
  quant: { file: "./quant.ts", what: "bytes/param, loaded memory and decode speed per scheme" },
  scale: {
    file: "./scale.ts",
    what: "1B/8B-shaped models: every scheme vs the bandwidth roofline",
  },
  "token-kernels": {
    file: "./token_kernels.ts",
    what: "one 1B-shaped decode token's packed products alone vs the bandwidth roofline",
  },
  train: { file: "./train.ts", what: "full / LoRA / QLoRA tokens/s and memory vs a PyTorch loop" },
  report: { file: "./report.ts", what: "time to build the report for 1,000 sweep points" },
  analyze: { file: "./analyze.ts", what: "sensitivity analysis time vs two forward passes" },
  engines: {
    file: "./engines.ts",
    what: "the lab's int8/nf4/int4 vs llama.cpp's Q8_0/Q4_K_M/Q4_0/IQ4_XS: speed, MB, PPL, KLD",
  },
  serve: {
    file: "./serve.ts",
    what: "OpenAI server on the 25M model: continuous batching vs one at a time, TTFT p99",
  },
};

const [name, ...rest] = Deno.args;
const entry = name ? BENCHES[name] : undefined;
if (!entry) {
  console.log("usage: deno task bench <name> [args]\n\nbenchmarks:");
  for (const [k, v] of Object.entries(BENCHES)) console.log(`  ${k.padEnd(13)} ${v.what}`);
  Deno.exit(name ? 1 : 0);
}
let mod: { main(args: string[]): Promise<void> };
try {
  mod = await import(entry.file);
} catch (e) {
  console.error(`benchmark '${name}' is not available: ${(e as Error).message}`);
  Deno.exit(1);
}
await mod.main(rest);
