// One streamed request to an OpenAI-compatible endpoint, timed token by token: time to first
// token, every inter-token gap, end to end; every failure (refused, HTTP error, not OpenAI's
// shape, a stall past a timeout) becomes the request's error, never an exception.
import { readSse } from "./sse.ts";

/** Limits on one request, in milliseconds. */
export interface RequestTimeouts {
  /** Until the response headers arrive (connect and queueing). */
  connectMs: number;
  /** Until the first token arrives. */
  firstTokenMs: number;
  /** For the whole request. */
  totalMs: number;
}

/** A request to send. */
export interface BenchRequest {
  prompt: string;
  /** max_tokens; with ignoreEos the server is asked for exactly this many. */
  outputTokens: number;
}

/** Where and how to send it. */
export interface EndpointOptions {
  /** Base URL, e.g. http://127.0.0.1:8000 (with or without /v1). */
  url: string;
  model: string;
  endpoint: "completions" | "chat";
  ignoreEos: boolean;
  timeouts: RequestTimeouts;
  /** Counts tokens of a text when the server reports no usage. */
  countTokens?: (text: string) => number;
}

/** What one request measured. */
export interface RequestResult {
  ok: boolean;
  /** HTTP status, or null when no response came. */
  status: number | null;
  error: string | null;
  ttftMs: number | null;
  /** (e2e − ttft) / (output tokens − 1). */
  tpotMs: number | null;
  /** Gaps between consecutive token chunks. */
  itlMs: number[];
  e2eMs: number | null;
  promptTokens: number | null;
  outputTokens: number | null;
  /** Where the token counts came from: "usage", "tokenizer" or "chunks". */
  tokenSource: string | null;
  text: string;
}

/** The generation URL of a base URL. */
export function endpointUrl(base: string, endpoint: "completions" | "chat"): string {
  const root = base.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${root}/v1/${endpoint === "chat" ? "chat/completions" : "completions"}`;
}

function requestBody(o: EndpointOptions, r: BenchRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: o.model,
    max_tokens: r.outputTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (o.ignoreEos) body.ignore_eos = true;
  if (o.endpoint === "chat") body.messages = [{ role: "user", content: r.prompt }];
  else body.prompt = r.prompt;
  return body;
}

/** A request's result before anything is known of it: not ok, nothing measured. */
export function pendingResult(error: string | null = null): RequestResult {
  return {
    ok: false,
    status: null,
    error,
    ttftMs: null,
    tpotMs: null,
    itlMs: [],
    e2eMs: null,
    promptTokens: null,
    outputTokens: null,
    tokenSource: null,
    text: "",
  };
}

/** Sends `r` and measures it; resolves with the outcome (never rejects). */
export async function sendRequest(o: EndpointOptions, r: BenchRequest): Promise<RequestResult> {
  const out = pendingResult();
  const abort = new AbortController();
  let phase = `no response within ${o.timeouts.connectMs} ms`;
  const timers = [
    setTimeout(() => abort.abort(new Error(phase)), o.timeouts.connectMs),
    setTimeout(
      () => abort.abort(new Error(`did not finish within ${o.timeouts.totalMs} ms`)),
      o.timeouts.totalMs,
    ),
  ];
  const t0 = performance.now();
  try {
    const res = await fetch(endpointUrl(o.url, o.endpoint), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(requestBody(o, r)),
      signal: abort.signal,
    });
    out.status = res.status;
    clearTimeout(timers[0]);
    phase = `no token within ${o.timeouts.firstTokenMs} ms`;
    timers[0] = setTimeout(() => abort.abort(new Error(phase)), o.timeouts.firstTokenMs);
    if (!res.ok) {
      out.error = `HTTP ${res.status}: ${errorText(await res.text())}`;
      return out;
    }
    await readTokens(res, o, t0, out, () => clearTimeout(timers[0]));
    out.ok = out.error === null;
  } catch (e) {
    out.error = abort.signal.aborted
      ? `timed out: ${(abort.signal.reason as Error)?.message ?? phase}`
      : `request failed: ${(e as Error).message}`;
  } finally {
    for (const t of timers) clearTimeout(t);
    abort.abort();
  }
  return out;
}

/** Reads the SSE body into `out`: token times, text, usage. */
async function readTokens(
  res: Response,
  o: EndpointOptions,
  t0: number,
  out: RequestResult,
  onFirst: () => void,
): Promise<void> {
  const type = res.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream")) {
    out.error = `not an OpenAI-compatible stream: content-type ${JSON.stringify(type)}, body ` +
      errorText(await res.text());
    return;
  }
  const stamps: number[] = [];
  let done = false;
  let usage: { prompt_tokens?: number; completion_tokens?: number } | null = null;
  for await (const data of readSse(res.body!)) {
    if (data.trim() === "[DONE]") {
      done = true;
      break;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      out.error = `not an OpenAI-compatible stream: an event is not JSON: ${data.slice(0, 120)}`;
      return;
    }
    if (event?.error) {
      out.error = `error event: ${event.error.message ?? JSON.stringify(event.error)}`;
      return;
    }
    if (event?.usage) usage = event.usage;
    const choice = event?.choices?.[0];
    const piece = choice?.text ?? choice?.delta?.content;
    // A chunk carrying a token: text (possibly empty while bytes are held back) and no finish.
    if (typeof piece === "string" && (piece !== "" || choice.finish_reason == null)) {
      if (stamps.length === 0) onFirst();
      stamps.push(performance.now() - t0);
      out.text += piece;
    }
  }
  if (!done) out.error = "the stream ended without data: [DONE]";
  finishTimes(out, stamps, usage, o);
}

function finishTimes(
  out: RequestResult,
  stamps: number[],
  usage: { prompt_tokens?: number; completion_tokens?: number } | null,
  o: EndpointOptions,
): void {
  if (stamps.length === 0) {
    out.error ??= "the stream held no tokens";
    return;
  }
  out.ttftMs = stamps[0];
  out.e2eMs = stamps[stamps.length - 1];
  out.itlMs = stamps.slice(1).map((t, i) => t - stamps[i]);
  if (usage?.completion_tokens != null) {
    out.outputTokens = usage.completion_tokens;
    out.promptTokens = usage.prompt_tokens ?? null;
    out.tokenSource = "usage";
  } else if (o.countTokens) {
    out.outputTokens = o.countTokens(out.text);
    out.tokenSource = "tokenizer";
  } else {
    out.outputTokens = stamps.length;
    out.tokenSource = "chunks";
  }
  if (out.outputTokens > 1) out.tpotMs = (out.e2eMs - out.ttftMs) / (out.outputTokens - 1);
}

/** The message of an error body (OpenAI's `error.message`, else the text), shortened. */
function errorText(body: string): string {
  try {
    const j = JSON.parse(body);
    const m = j?.error?.message ?? j?.error ?? j?.message;
    if (typeof m === "string") return m.slice(0, 300);
  } catch { /* not JSON */ }
  return body.slice(0, 300) || "(empty body)";
}
