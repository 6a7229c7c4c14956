// serve_bench end to end: against a scripted endpoint (framing variants, a 500, a stall, a
// non-SSE answer) and against the lab's own server, which it starts and always stops.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";
import { arrivalTimes, summarize, type TimedResult } from "../serve/load_run.ts";

const MOD = new URL("../mod.ts", import.meta.url).href;
const enc = new TextEncoder();

/** An endpoint whose behaviour each prompt picks. */
function scriptedEndpoint(): Deno.HttpServer<Deno.NetAddr> {
  const event = (o: unknown, sep = "\n\n", prefix = "data: ") =>
    enc.encode(`${prefix}${JSON.stringify(o)}${sep}`);
  const tok = (text: string, reason: string | null = null) => ({
    choices: [{ index: 0, text, finish_reason: reason }],
  });
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.method === "GET") return Response.json({ data: [{ id: "scripted" }] });
    const body = await req.json();
    const mode = body.prompt as string;
    if (mode === "fail500") return Response.json({ error: { message: "boom" } }, { status: 500 });
    if (mode === "notsse") return new Response("<html>hello</html>", { status: 200 });
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        const sep = mode === "crlf" ? "\r\n\r\n" : "\n\n";
        const prefix = mode === "nospace" ? "data:" : "data: ";
        if (mode === "stall") {
          c.enqueue(event(tok("a"), sep, prefix));
          await new Promise((r) => setTimeout(r, 3000));
          try {
            c.close();
          } catch { /* the client gave up */ }
          return;
        }
        for (const t of ["a", "b", "c"]) c.enqueue(event(tok(t), sep, prefix));
        c.enqueue(enc.encode(": a comment line\n\n"));
        c.enqueue(event(tok("", "length"), sep, prefix));
        // "nousage" leaves the count to the tokenizer / the chunks.
        if (mode !== "nousage") {
          c.enqueue(event({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3 } }));
        }
        c.enqueue(enc.encode(`${prefix}[DONE]${sep}`));
        c.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
}

async function runIn(dir: string, source: string) {
  const file = join(dir, "p.ts");
  Deno.writeTextFileSync(file, source);
  const results = join(dir, "results");
  const run = await runPipeline(file, {
    resultsDir: results,
    executor: "inline",
    reporter: silentReporter,
  });
  const db = await LabDatabase.open(databasePath(results), { readOnly: true });
  try {
    return {
      run,
      rows: async (sql: string) => (await db.query(sql)).rows,
      close: () => db.close(),
    };
  } catch (e) {
    db.close();
    throw e;
  }
}

Deno.test("serve_bench records framing variants, a 500, a stall and a non-SSE answer per request", async () => {
  const server = scriptedEndpoint();
  const dir = Deno.makeTempDirSync({ prefix: "lab-sbench-" });
  try {
    const modes = ["ok", "crlf", "nospace", "nousage", "fail500", "stall", "notsse"];
    Deno.writeTextFileSync(
      join(dir, "prompts.jsonl"),
      modes.map((m) => JSON.stringify({ prompt: m, output_tokens: 3 })).join("\n"),
    );
    const { run, rows, close } = await runIn(
      dir,
      `import { pipeline, serve_bench } from "${MOD}";
export default pipeline("sb", () => {
  serve_bench({ url: "http://127.0.0.1:${server.addr.port}/v1", rates: ["inf"], requests: 7,
    dataset: "${join(dir, "prompts.jsonl")}", timeouts: { firstTokenS: 5, totalS: 1 } });
});`,
    );
    try {
      assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
      const got = await rows(
        `SELECT request, ok, status, error, output_tokens, token_source, json_array_length(itl_ms) AS itls
         FROM serving_requests ORDER BY request`,
      );
      const by = (i: number) => got[i];
      for (const i of [0, 1, 2]) {
        assert.equal(by(i).ok, true, `${modes[i]}: ${by(i).error}`);
        assert.equal(by(i).output_tokens, 3);
        assert.equal(by(i).token_source, "usage");
        assert.equal(by(i).itls, 2);
      }
      assert.equal(by(3).ok, true);
      assert.equal(by(3).token_source, "chunks");
      assert.equal(by(4).status, 500);
      assert.match(String(by(4).error), /HTTP 500: boom/);
      assert.match(String(by(5).error), /timed out/);
      assert.match(String(by(6).error), /not an OpenAI-compatible stream/);
      const [sum] = await rows(`SELECT requests, completed, failed FROM serving_summary`);
      assert.deepEqual([sum.requests, sum.completed, sum.failed], [7, 4, 3]);
    } finally {
      close();
    }
  } finally {
    await server.shutdown();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("serve_bench fails only when every request failed (an unreachable endpoint)", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-sbench-" });
  try {
    // A port nothing listens on: bind one, note it, close it.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const { run, rows, close } = await runIn(
      dir,
      `import { pipeline, serve_bench } from "${MOD}";
export default pipeline("sb", () => {
  serve_bench({ url: "http://127.0.0.1:${port}", model: "m", rates: [50], requests: 3 });
});`,
    );
    try {
      assert.equal(run.status, "failed");
      assert.match(run.failures[0].error?.message ?? "", /every request .* failed/);
    } finally {
      close();
    }
    void rows;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("serve_bench serves a model input itself, records TTFT/TPOT/ITL, and stops its server", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-sbench-" });
  try {
    const { run, rows, close } = await runIn(
      dir,
      `import { load, pipeline, quantize, serve_bench } from "${MOD}";
export default pipeline("sb", () => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 2 } });
  serve_bench(quantize(base, { scheme: "int8" }), { rates: [20, "inf"], requests: 6,
    promptTokens: [8, 16], outputTokens: 8, server: { maxBatch: 4 } });
});`,
    );
    try {
      assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
      const req = await rows(
        `SELECT count(*) AS n, count(*) FILTER (WHERE ok) AS ok, min(output_tokens) AS lo,
                max(output_tokens) AS hi, min(prompt_tokens) AS plo, max(prompt_tokens) AS phi,
                sum(json_array_length(itl_ms)) AS itls, bool_and(tpot_ms > 0) AS tpot
         FROM serving_requests`,
      );
      assert.deepEqual(
        [req[0].n, req[0].ok, req[0].lo, req[0].hi, req[0].tpot],
        [12, 12, 8, 8, true],
      );
      // 7 gaps per request; a last token that decodes to no text (a special token) sends an
      // empty finishing chunk, which clients cannot tell from a separate finish chunk.
      assert.ok(Number(req[0].itls) <= 12 * 7 && Number(req[0].itls) >= 12 * 6, `${req[0].itls}`);
      // The prompt lengths the byte tokenizer counts, plus the BOS the server adds.
      assert.ok(Number(req[0].plo) >= 9 && Number(req[0].phi) <= 17, JSON.stringify(req[0]));
      const view = await rows(
        `SELECT rate, scheme, completed, ttft_p99_ms >= ttft_p50_ms AS ordered FROM serving_results ORDER BY rate`,
      );
      assert.deepEqual(view.map((r) => [r.rate, r.scheme, r.completed, r.ordered]), [
        ["20", "int8", 6, true],
        ["inf", "int8", 6, true],
      ]);
      // `lab serve-model --stage KEY` finds the quantized folder by a key prefix.
      const [{ key }] = await rows(`SELECT key FROM latest_stages WHERE kind = 'quantize'`);
      const { stageModelDir } = await import("../serve/stage_model.ts");
      const served = stageModelDir(join(dir, "results"), String(key).slice(0, 10));
      assert.ok(Deno.statSync(join(served, "config.json")).isFile);
      assert.throws(() => stageModelDir(join(dir, "results"), "zzz"), /no finished stage/);
    } finally {
      close();
    }
    const { buildReport } = await import("../reports/build.ts");
    const report = await buildReport(join(dir, "results"), { out: join(dir, "r.html") });
    const serving = report.charts.filter((c) => c.id.startsWith("serving_"));
    assert.deepEqual(serving.map((c) => [c.id, c.svg !== null, c.marks.dots]), [
      ["serving_latency", true, 6],
      ["serving_throughput", true, 4],
    ]);
    // No server left behind: no child of this process runs serve-model (read from /proc).
    const mine: string[] = [];
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
        if (ppid === Deno.pid && cmd.includes("serve-model")) mine.push(cmd);
      } catch { /* the process ended meanwhile */ }
    }
    assert.deepEqual(mine, []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Poisson arrivals are seeded and at the rate; goodput counts only requests within the SLOs", () => {
  const a = arrivalTimes(4000, 20, 7);
  assert.deepEqual(a, arrivalTimes(4000, 20, 7));
  const meanGap = a[a.length - 1] / (a.length - 1);
  assert.ok(Math.abs(meanGap - 50) < 3, `mean gap ${meanGap} ms, want 50`);
  assert.deepEqual(arrivalTimes(3, Infinity, 1), [0, 0, 0]);
  const r = (ttft: number, tpot: number, ok = true): TimedResult => ({
    index: 0,
    sentMs: 0,
    ok,
    status: ok ? 200 : 500,
    error: ok ? null : "x",
    ttftMs: ok ? ttft : null,
    tpotMs: ok ? tpot : null,
    itlMs: ok ? [tpot, tpot] : [],
    e2eMs: ok ? ttft + 2 * tpot : null,
    promptTokens: 4,
    outputTokens: ok ? 3 : null,
    tokenSource: "usage",
    text: "",
  });
  const s = summarize([r(100, 10), r(300, 10), r(100, 50), r(0, 0, false)], 2, {
    ttftMs: 200,
    tpotMs: 20,
  });
  assert.equal(s.completed, 3);
  assert.equal(s.failed, 1);
  assert.equal(s.goodputPerS, 0.5);
  assert.equal(s.requestsPerS, 1.5);
  assert.equal(s.outputTokensPerS, 4.5);
  assert.equal(s.sloAttainment, 0.25);
  assert.equal(s.ttft_p50_ms, 100);
  assert.equal(s.itl_p50_ms, 10);
});

Deno.test("serve_bench: bad params are plan-time errors naming the field", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-sbench-" });
  try {
    const cases: [string, RegExp][] = [
      [`{ url: "http://127.0.0.1:1", rates: [] }`, /rates/],
      [`{ url: "http://127.0.0.1:1", rates: [-1] }`, /rates/],
      [`{ url: "not a url" }`, /url/],
      [`{ url: "http://127.0.0.1:1", promptTokens: [9, 3] }`, /promptTokens/],
      [`{ url: "http://127.0.0.1:1", slo: { ttftMs: 0, tpotMs: 5 } }`, /slo/],
      [`{ url: "http://127.0.0.1:1", rate: [1] }`, /rate/],
    ];
    for (const [i, [params, field]] of cases.entries()) {
      // One file per case: a module is imported once per path.
      const file = join(dir, `p${i}.ts`);
      Deno.writeTextFileSync(
        file,
        `import { pipeline, serve_bench } from "${MOD}";
export default pipeline("sb", () => { serve_bench(${params}); });`,
      );
      await assert.rejects(
        () =>
          runPipeline(file, {
            resultsDir: join(dir, "results"),
            executor: "inline",
            reporter: silentReporter,
          }),
        (e: Error) => field.test(e.message) && /serve_bench/.test(e.message),
        params,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
