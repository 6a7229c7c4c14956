// One /v1/completions or /v1/chat/completions request: tokenize, check against the context,
// run it through the batcher, answer as JSON or as server-sent events.
import type { LlamaModel } from "../models/llama.ts";
import {
  ApiError,
  type GenerationRequest,
  jsonResponse,
  parseGenerationRequest,
} from "./openai.ts";
import {
  type ContinuousBatcher,
  QueueFullError,
  type SequenceRequest,
  type SequenceResult,
} from "./batcher.ts";
import { TextStreamer } from "./text_stream.ts";

/** What every request handler needs. */
export interface ServingContext {
  model: LlamaModel;
  /** The name clients pass as `model`. */
  modelName: string;
  batcher: ContinuousBatcher;
  maxContext: number;
  /** Default max_tokens of /v1/completions (OpenAI's is 16). */
  defaultMaxTokens: number;
}

interface Prepared {
  req: GenerationRequest;
  ids: number[];
  maxTokens: number;
  stopTokens: Set<number>;
}

let nextId = 0;

/** Tokenizes and checks `req` against the model and its context. */
function prepare(ctx: ServingContext, req: GenerationRequest): Prepared {
  if (req.model !== ctx.modelName) {
    throw new ApiError(
      404,
      `The model '${req.model}' does not exist; this server has '${ctx.modelName}'`,
      {
        param: "model",
        code: "model_not_found",
      },
    );
  }
  const tok = ctx.model.tokenizer!;
  let ids: number[];
  if (req.kind === "chat") {
    if (!tok.hasChatTemplate) {
      throw new ApiError(
        400,
        "this model's tokenizer_config.json has no chat_template; use /v1/completions",
        {
          param: "messages",
        },
      );
    }
    ids = tok.encode(tok.applyChatTemplate(req.messages!), { addSpecialTokens: false });
  } else if (typeof req.prompt === "string") ids = tok.encode(req.prompt);
  else ids = req.prompt!;
  const vocab = ctx.model.config.vocabSize;
  if (ids.length === 0) {
    throw new ApiError(400, "the prompt encodes to no tokens", { param: "prompt" });
  }
  if (ids.some((t) => t >= vocab)) {
    throw new ApiError(400, `a prompt token id is outside the vocabulary [0, ${vocab})`, {
      param: "prompt",
    });
  }
  const room = ctx.maxContext - ids.length;
  const maxTokens = req.maxTokens ??
    (req.kind === "chat" ? room : Math.min(ctx.defaultMaxTokens, room));
  if (room < 1 || maxTokens > room) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${ctx.maxContext} tokens. However, you requested ` +
        `${ids.length + Math.max(maxTokens, 1)} tokens (${ids.length} in the prompt, ` +
        `${Math.max(maxTokens, 1)} for the completion). Please reduce the prompt or max_tokens.`,
      {
        param: room < 1 ? (req.kind === "chat" ? "messages" : "prompt") : "max_tokens",
        code: "context_length_exceeded",
      },
    );
  }
  const c = ctx.model.config;
  const stopTokens = new Set(
    req.ignoreEos ? [] : [...c.eosTokenIds, ...(tok.eosTokenId != null ? [tok.eosTokenId] : [])],
  );
  return { req, ids, maxTokens, stopTokens };
}

/** Answers a generation request on `kind`'s endpoint. */
export async function handleGeneration(
  ctx: ServingContext,
  request: Request,
  kind: "completion" | "chat",
): Promise<Response> {
  const req = parseGenerationRequest(kind, await request.text());
  const p = prepare(ctx, req);
  const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${nextId++}`;
  return req.stream ? streamResponse(ctx, p, id) : await wholeResponse(ctx, p, id, request.signal);
}

function submit(
  ctx: ServingContext,
  p: Prepared,
  signal: AbortSignal,
  onToken: NonNullable<SequenceRequest["onToken"]>,
): Promise<SequenceResult> {
  try {
    return ctx.batcher.submit({
      prompt: p.ids,
      maxTokens: p.maxTokens,
      sampling: { temperature: p.req.temperature, topP: p.req.topP },
      seed: p.req.seed ?? Math.floor(Math.random() * 2 ** 32),
      stopTokens: p.stopTokens,
      onToken,
      signal,
    });
  } catch (e) {
    if (e instanceof QueueFullError) {
      throw new ApiError(429, `${e.message}; retry later`, {
        type: "rate_limit_error",
        code: "rate_limit_exceeded",
      });
    }
    throw e;
  }
}

function usage(p: Prepared, completion: number) {
  return {
    prompt_tokens: p.ids.length,
    completion_tokens: completion,
    total_tokens: p.ids.length + completion,
  };
}

function finishReason(r: SequenceResult, streamer: TextStreamer): string {
  return streamer.stopped || r.finishReason === "stop" ? "stop" : "length";
}

async function wholeResponse(
  ctx: ServingContext,
  p: Prepared,
  id: string,
  signal: AbortSignal,
): Promise<Response> {
  const streamer = new TextStreamer(ctx.model.tokenizer!, p.req.stop);
  const r = await submit(ctx, p, signal, (t) => {
    streamer.push(t);
    return streamer.stopped;
  });
  streamer.flush();
  const reason = finishReason(r, streamer);
  const created = Math.floor(Date.now() / 1000);
  const choice = p.req.kind === "chat"
    ? {
      index: 0,
      message: { role: "assistant", content: streamer.text },
      finish_reason: reason,
      logprobs: null,
    }
    : { index: 0, text: streamer.text, finish_reason: reason, logprobs: null };
  return jsonResponse({
    id,
    object: p.req.kind === "chat" ? "chat.completion" : "text_completion",
    created,
    model: ctx.modelName,
    choices: [choice],
    usage: usage(p, r.tokens.length),
  });
}

/** Server-sent events: one chunk per token (the last with its finish reason), usage, [DONE]. */
// Streams learn of a disconnect from their body's cancel() only: Deno's request.signal also
// fires once a streamed response is under way.
function streamResponse(ctx: ServingContext, p: Prepared, id: string): Response {
  const enc = new TextEncoder();
  const gone = new AbortController();
  const created = Math.floor(Date.now() / 1000);
  const object = p.req.kind === "chat" ? "chat.completion.chunk" : "text_completion";
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    enc.encode(
      `data: ${
        JSON.stringify({ id, object, created, model: ctx.modelName, choices, ...extra })
      }\n\n`,
    );
  const choice = (text: string, reason: string | null, first: boolean) =>
    p.req.kind === "chat"
      ? {
        index: 0,
        delta: first ? { role: "assistant", content: text } : { content: text },
        finish_reason: reason,
        logprobs: null,
      }
      : { index: 0, text, finish_reason: reason, logprobs: null };
  const streamer = new TextStreamer(ctx.model.tokenizer!, p.req.stop);
  // Refused before any byte is sent (429): answered as a plain JSON error, not a stream.
  let count = 0;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // The last token's chunk carries the finish reason and any text held back until then.
  const done = submit(ctx, p, gone.signal, (t, last) => {
    let text = streamer.push(t);
    const reason = streamer.stopped ? "stop" : last;
    if (reason) text += streamer.flush();
    try {
      controller.enqueue(chunk([choice(text, reason, count++ === 0)]));
    } catch { /* the client went away; the abort frees the row */ }
    return streamer.stopped;
  });
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      done.then((r) => {
        if (r.finishReason === "cancelled") {
          // The client went away (or the server is stopping): end the body so nothing waits on it.
          try {
            c.close();
          } catch { /* already cancelled by the client */ }
          return;
        }
        c.enqueue(chunk([], { usage: usage(p, r.tokens.length) }));
        c.enqueue(enc.encode("data: [DONE]\n\n"));
        c.close();
      }).catch((e) => {
        const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
        try {
          c.enqueue(enc.encode(`data: ${JSON.stringify(err.body())}\n\n`));
          c.close();
        } catch { /* the client went away */ }
      });
    },
    cancel() {
      gone.abort();
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
}
