// The OpenAI-compatible server over loopback: JSON and SSE answers, continuous batching equal to
// generate(), disconnects, 429 and OpenAI-shaped errors.
import assert from "node:assert/strict";
import { loadModel } from "../models/mod.ts";
import { createTinyModel, type TinyPreset } from "../models/tiny.ts";
import { startModelServer } from "../serve/server.ts";
import { TextStreamer } from "../serve/text_stream.ts";
import { readSse } from "../serve/sse.ts";
import type { LlamaModel } from "../models/llama.ts";

async function withServer(
  opts: { preset?: TinyPreset; maxBatch?: number; maxWaiting?: number },
  fn: (url: string, model: LlamaModel, s: ReturnType<typeof startModelServer>) => Promise<void>,
) {
  const dir = Deno.makeTempDirSync({ prefix: "lab-serve-" });
  try {
    createTinyModel({ out: dir, preset: opts.preset ?? "tiny", seed: 3 });
    using model = loadModel(dir);
    const server = startModelServer({
      model,
      modelName: "tiny",
      maxBatch: opts.maxBatch,
      maxWaiting: opts.maxWaiting,
    });
    try {
      await fn(server.url, model, server);
    } finally {
      await server.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function post(url: string, path: string, body: unknown, signal?: AbortSignal) {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

const PROMPTS = ["The quick brown fox", "Once upon a time, in a land"];

/** What generate() makes of `prompt` alone, greedy, as the server tokenizes it. */
function alone(model: LlamaModel, prompt: string, maxTokens: number, ignoreEos = false) {
  const ids = model.tokenizer!.encode(prompt);
  const r = model.generate([ids], {
    maxNewTokens: maxTokens,
    stopTokens: ignoreEos ? [] : undefined,
  });
  return { text: r.text![0], tokens: r.tokens[0].length };
}

Deno.test("serve: /v1/models and a greedy completion equal to generate()", async () => {
  await withServer({}, async (url, model) => {
    const models = await (await fetch(`${url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["tiny"]);
    const res = await post(url, "/v1/completions", {
      model: "tiny",
      prompt: PROMPTS[0],
      max_tokens: 20,
      temperature: 0,
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    const want = alone(model, PROMPTS[0], 20);
    assert.equal(body.choices[0].text, want.text);
    assert.equal(body.usage.completion_tokens, want.tokens);
    assert.equal(body.usage.prompt_tokens, model.tokenizer!.encode(PROMPTS[0]).length);
    assert.equal(body.object, "text_completion");
  });
});

Deno.test("serve: SSE has one chunk per token, usage in the last chunk, then [DONE]", async () => {
  await withServer({}, async (url, model) => {
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      const chat = path.includes("chat");
      const req = chat
        ? { messages: [{ role: "user", content: PROMPTS[1] }] }
        : { prompt: PROMPTS[1] };
      const common = { model: "tiny", max_tokens: 12, temperature: 0, ignore_eos: true };
      const whole = await (await post(url, path, { ...req, ...common })).json();
      const res = await post(url, path, { ...req, ...common, stream: true });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const events: string[] = [];
      for await (const e of readSse(res.body!)) events.push(e);
      assert.equal(events.at(-1), "[DONE]");
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
      const usage = chunks.at(-1).usage;
      assert.deepEqual(chunks.at(-1).choices, []);
      // 12 token chunks (the last one finishing), then the usage chunk.
      assert.equal(chunks.length, 12 + 1);
      assert.equal(usage.completion_tokens, 12);
      assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
      const text = chunks.slice(0, -1).map((c) =>
        chat ? c.choices[0].delta.content : c.choices[0].text
      ).join("");
      assert.equal(text, chat ? whole.choices[0].message.content : whole.choices[0].text);
      assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
      if (chat) assert.equal(chunks[0].choices[0].delta.role, "assistant");
      else assert.equal(text, alone(model, PROMPTS[1], 12, true).text);
    }
  });
});

Deno.test("serve: overlapping greedy requests share decode steps and match generate() alone", async () => {
  await withServer({ maxBatch: 4 }, async (url, model, server) => {
    const body = (prompt: string, n: number) => ({
      model: "tiny",
      prompt,
      max_tokens: n,
      temperature: 0,
      ignore_eos: true,
    });
    // The second joins while the first is decoding (its keys sit at another column offset).
    const first = await post(url, "/v1/completions", { ...body(PROMPTS[0], 400), stream: true });
    const events = readSse(first.body!);
    for (let i = 0; i < 3; i++) await events.next();
    const second = await post(url, "/v1/completions", body(PROMPTS[1], 16));
    const secondText = (await second.json()).choices[0].text;
    let firstText = "";
    for await (const e of events) {
      if (e !== "[DONE]") firstText += JSON.parse(e).choices[0]?.text ?? "";
    }
    assert.equal(server.batcher.stats().maxBatchRun, 2);
    assert.equal(secondText, alone(model, PROMPTS[1], 16, true).text);
    // The first three chunks were read above: compare the rest.
    assert.ok(alone(model, PROMPTS[0], 400, true).text.endsWith(firstText));
    // Both at once, and a third longer prompt: every output as alone.
    const all = await Promise.all(
      [...PROMPTS, "Hello world, here is a longer prompt than the others"].map(async (p) =>
        (await (await post(url, "/v1/completions", body(p, 24))).json()).choices[0].text
      ),
    );
    all.forEach((t, i) =>
      assert.equal(
        t,
        alone(
          model,
          [...PROMPTS, "Hello world, here is a longer prompt than the others"][i],
          24,
          true,
        ).text,
      )
    );
  });
});

Deno.test("serve: 429 when full, and a client that disconnects frees its row at once", async () => {
  await withServer({ preset: "small", maxBatch: 2, maxWaiting: 0 }, async (url, _model, server) => {
    const long = {
      model: "tiny",
      max_tokens: 900,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    };
    const aborts = [new AbortController(), new AbortController()];
    const streams = await Promise.all(
      aborts.map((a, i) => post(url, "/v1/completions", { ...long, prompt: PROMPTS[i] }, a.signal)),
    );
    assert.deepEqual(streams.map((s) => s.status), [200, 200]);
    const readers = streams.map((s) => readSse(s.body!));
    for (const r of readers) await r.next();
    assert.equal(server.batcher.stats().running, 2);
    const refused = await post(url, "/v1/completions", {
      model: "tiny",
      prompt: "x",
      max_tokens: 2,
    });
    assert.equal(refused.status, 429);
    assert.equal((await refused.json()).error.code, "rate_limit_exceeded");
    aborts[0].abort();
    await readers[0].return(undefined).catch(() => {});
    while (server.batcher.stats().running === 2) await new Promise((r) => setTimeout(r, 1));
    const third = await post(url, "/v1/completions", { model: "tiny", prompt: "x", max_tokens: 2 });
    assert.equal(third.status, 200);
    assert.equal((await third.json()).usage.completion_tokens, 2);
    assert.equal(server.batcher.stats().running, 1, "the other long request still runs");
    aborts[1].abort();
    await readers[1].return(undefined).catch(() => {});
  });
});

Deno.test("serve: bad JSON, unknown model, over-long prompt and bad fields get OpenAI-shaped 4xx", async () => {
  await withServer({}, async (url) => {
    const cases: [unknown, number, string | null, string | null][] = [
      ["{not json", 400, null, null],
      [{ model: "gpt-9", prompt: "hi" }, 404, "model", "model_not_found"],
      [{ model: "tiny", prompt: "x".repeat(600) }, 400, "prompt", "context_length_exceeded"],
      [
        { model: "tiny", prompt: "hi", max_tokens: 600 },
        400,
        "max_tokens",
        "context_length_exceeded",
      ],
      [{ model: "tiny", prompt: "hi", temperature: 5 }, 400, "temperature", null],
      [{ model: "tiny", prompt: "hi", n: 2 }, 400, "n", null],
      [{ model: "tiny" }, 400, "prompt", null],
    ];
    for (const [body, status, param, code] of cases) {
      const res = await post(url, "/v1/completions", body);
      assert.equal(res.status, status, JSON.stringify(body).slice(0, 60));
      const { error } = await res.json();
      assert.equal(typeof error.message, "string");
      assert.equal(error.type, status === 404 ? "invalid_request_error" : "invalid_request_error");
      assert.equal(error.param, param);
      assert.equal(error.code, code);
    }
    const chat = await post(url, "/v1/chat/completions", { model: "tiny", messages: [] });
    assert.equal(chat.status, 400);
    assert.equal((await chat.json()).error.param, "messages");
    const missing = await fetch(`${url}/v1/embeddings`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });
});

Deno.test("serve: stop strings cut the text, held back while they may still match", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-serve-" });
  try {
    createTinyModel({ out: dir, seed: 1 });
    using model = loadModel(dir);
    const tok = model.tokenizer!;
    const s = new TextStreamer(tok, ["END"]);
    const ids = tok.encode("abcENxEND tail", { addSpecialTokens: false });
    const deltas = ids.map((id) => s.push(id));
    assert.equal(s.stopped, true);
    assert.equal(s.text, "abcENx");
    assert.equal(deltas.join("") + s.flush(), "abcENx");
    // "EN" was held back until "x" showed it was no stop.
    assert.equal(deltas[4], "");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("batcher: staggered arrivals past the cache's columns compact and still match generate()", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-serve-" });
  try {
    createTinyModel({ out: dir, seed: 5 });
    using model = loadModel(dir);
    const { ContinuousBatcher } = await import("../serve/batcher.ts");
    // 40 positions a sequence: the shared timeline (81 columns) runs out and compacts.
    const b = new ContinuousBatcher(model, { maxBatch: 3, maxWaiting: 16, maxContext: 40 });
    try {
      const tok = model.tokenizer!;
      const prompts = Array.from({ length: 14 }, (_, i) => `prompt ${i}: ${"ab".repeat(i % 7)}`);
      const runs: Promise<{ tokens: number[] }>[] = [];
      // Each request arrives when the one before has made 6 tokens: the batch never drains.
      const submit = (i: number) => {
        const prompt = tok.encode(prompts[i]);
        let made = 0;
        runs.push(b.submit({
          prompt,
          maxTokens: 40 - prompt.length - (i % 3),
          sampling: i % 2 ? { temperature: 0.8, topP: 0.9 } : {},
          seed: i,
          stopTokens: new Set(),
          onToken: () => {
            if (++made === 6 && i + 1 < prompts.length) submit(i + 1);
          },
        }));
      };
      submit(0);
      while (runs.length < prompts.length) await new Promise((r) => setTimeout(r, 5));
      const got = await Promise.all(runs);
      assert.ok(b.stats().maxBatchRun >= 2);
      assert.ok(b.stats().compactions > 0, `the timeline compacted: ${JSON.stringify(b.stats())}`);
      for (const [i, p] of prompts.entries()) {
        const prompt = tok.encode(p);
        const want = model.generate([prompt], {
          maxNewTokens: 40 - prompt.length - (i % 3),
          stopTokens: [],
          ...(i % 2 ? { temperature: 0.8, topP: 0.9 } : {}),
          seed: i,
        });
        assert.deepEqual(got[i].tokens, want.tokens[0], `request ${i}`);
      }
    } finally {
      b.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
