// OpenAI's request and error shapes: parsing /v1/completions and /v1/chat/completions bodies
// into one checked form, and the JSON error body every refusal uses.
import type { ChatMessage } from "../models/tokenizer.ts";

/** An error answered as OpenAI answers it: status plus `{ error: { message, type, param, code } }`. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  constructor(
    status: number,
    message: string,
    opts: { type?: string; param?: string | null; code?: string | null } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }

  /** The JSON body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

/** A JSON response with `status`. */
export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** The response of an ApiError (any other error becomes a 500 with its message). */
export function errorResponse(e: unknown): Response {
  const err = e instanceof ApiError ? e : new ApiError(500, (e as Error)?.message ?? String(e));
  return jsonResponse(err.body(), err.status);
}

/** A checked generation request of either endpoint. */
export interface GenerationRequest {
  kind: "completion" | "chat";
  model: string;
  /** Completions: the prompt text or token ids. */
  prompt?: string | number[];
  /** Chat: the conversation. */
  messages?: ChatMessage[];
  /** Absent: the endpoint's default. */
  maxTokens?: number;
  temperature: number;
  topP: number;
  seed?: number;
  stop: string[];
  stream: boolean;
  /** Generate exactly maxTokens, past end-of-sequence tokens (vLLM's extension). */
  ignoreEos: boolean;
}

const bad = (message: string, param: string) => new ApiError(400, message, { param });

function optionalNumber(
  body: Record<string, unknown>,
  key: string,
  ok: (n: number) => boolean,
  rule: string,
): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
    throw bad(`'${key}' must be ${rule}, got ${JSON.stringify(v)}`, key);
  }
  return v;
}

function stopStrings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== "string" || !s)) {
    throw bad("'stop' must be a non-empty string or a list of at most 4 of them", "stop");
  }
  return list as string[];
}

function messageList(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw bad("'messages' must be a non-empty list of { role, content }", "messages");
  }
  return v.map((m, i) => {
    const role = (m as { role?: unknown })?.role;
    let content = (m as { content?: unknown })?.content;
    if (Array.isArray(content)) {
      // Content parts: only text parts carry anything a text model can read.
      content = content.map((p) => (p?.type === "text" && typeof p.text === "string" ? p.text : ""))
        .join("");
    }
    if (typeof role !== "string" || typeof content !== "string") {
      throw bad(`messages[${i}] must have a string 'role' and a string 'content'`, "messages");
    }
    return { role, content };
  });
}

function promptOf(v: unknown): string | number[] {
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string") return v[0];
  if (typeof v === "string") {
    if (!v) throw bad("'prompt' is empty", "prompt");
    return v;
  }
  if (Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && t >= 0)) {
    return v as number[];
  }
  throw bad("'prompt' must be a string or a list of token ids (one prompt per request)", "prompt");
}

/** Parses and checks a request body; throws ApiError naming the bad field. */
export function parseGenerationRequest(
  kind: "completion" | "chat",
  text: string,
): GenerationRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new ApiError(400, "the request body must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  if (typeof b.model !== "string" || !b.model) throw bad("'model' is required", "model");
  // Checked only: one choice per request is all this server makes.
  optionalNumber(b, "n", (x) => x === 1, "1 (one choice per request)");
  const maxKey = kind === "chat" && b.max_completion_tokens !== undefined
    ? "max_completion_tokens"
    : "max_tokens";
  return {
    kind,
    model: b.model,
    prompt: kind === "completion" ? promptOf(b.prompt) : undefined,
    messages: kind === "chat" ? messageList(b.messages) : undefined,
    maxTokens: optionalNumber(b, maxKey, (x) => Number.isInteger(x) && x >= 1, "an integer ≥ 1"),
    temperature: optionalNumber(b, "temperature", (x) => x >= 0 && x <= 2, "in [0, 2]") ?? 1,
    topP: optionalNumber(b, "top_p", (x) => x > 0 && x <= 1, "in (0, 1]") ?? 1,
    seed: optionalNumber(b, "seed", Number.isInteger, "an integer"),
    stop: stopStrings(b.stop),
    stream: b.stream === true,
    ignoreEos: b.ignore_eos === true,
  };
}
