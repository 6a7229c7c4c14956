// The OpenAI-compatible HTTP server over one model: /v1/models, /v1/completions and
// /v1/chat/completions on Deno.serve, with continuous batching behind them.
import type { LlamaModel } from "../models/llama.ts";
import { LabError } from "../errors.ts";
import { ContinuousBatcher } from "./batcher.ts";
import { handleGeneration, type ServingContext } from "./generation.ts";
import { ApiError, errorResponse, jsonResponse } from "./openai.ts";

/** Options of startModelServer. */
export interface ModelServerOptions {
  model: LlamaModel;
  /** The id /v1/models lists and requests name (default: the model folder's name). */
  modelName?: string;
  /** Sequences decoded together at most (default 8). */
  maxBatch?: number;
  /** Requests queued behind a full batch before answering 429 (default 64). */
  maxWaiting?: number;
  /** Prompt plus completion tokens at most (default: max_position_embeddings, at most 2048). */
  maxContext?: number;
  hostname?: string;
  /** 0: any free port (default). */
  port?: number;
}

/** A running server. */
export interface ModelServer {
  url: string;
  port: number;
  modelName: string;
  batcher: ContinuousBatcher;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stops listening, cancels running requests, frees the KV cache. */
  close(): Promise<void>;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new LabError(`${name} must be a positive integer, got ${v}`);
  }
  return v;
}

/** Starts serving `opts.model`; the caller keeps ownership of the model. */
export function startModelServer(opts: ModelServerOptions): ModelServer {
  const model = opts.model;
  if (!model.tokenizer) {
    throw new LabError(
      `${model.source ?? "the model"} has no tokenizer.json; a server needs one to read prompts`,
    );
  }
  const limit = model.config.maxPositionEmbeddings;
  const maxContext = positiveInt("max context", opts.maxContext ?? Math.min(limit, 2048));
  if (maxContext > limit) {
    throw new LabError(
      `max context ${maxContext} exceeds the model's max_position_embeddings (${limit})`,
    );
  }
  const modelName = opts.modelName ?? model.source?.replace(/\/+$/, "").split("/").pop() ?? "model";
  const batcher = new ContinuousBatcher(model, {
    maxBatch: positiveInt("--max-batch", opts.maxBatch ?? 8),
    maxWaiting: opts.maxWaiting ?? 64,
    maxContext,
  });
  const ctx: ServingContext = { model, modelName, batcher, maxContext, defaultMaxTokens: 16 };
  const created = Math.floor(Date.now() / 1000);
  const server = Deno.serve(
    { hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0, onListen: () => {} },
    (request) => route(ctx, request, created),
  );
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    modelName,
    batcher,
    finished: server.finished,
    close: async () => {
      batcher.close();
      await server.shutdown();
    },
  };
}

async function route(ctx: ServingContext, request: Request, created: number): Promise<Response> {
  const path = new URL(request.url).pathname.replace(/\/+$/, "");
  try {
    if (path === "/v1/models" && request.method === "GET") {
      return jsonResponse({
        object: "list",
        data: [{
          id: ctx.modelName,
          object: "model",
          created,
          owned_by: "llm-efficiency-lab",
          max_model_len: ctx.maxContext,
        }],
      });
    }
    if (path === "/health" && request.method === "GET") return jsonResponse(ctx.batcher.stats());
    const kind = path === "/v1/completions"
      ? "completion"
      : path === "/v1/chat/completions"
      ? "chat"
      : null;
    if (kind === null) {
      throw new ApiError(404, `no route ${request.method} ${path}`, { code: "not_found" });
    }
    if (request.method !== "POST") {
      throw new ApiError(405, `${path} takes POST, got ${request.method}`);
    }
    return await handleGeneration(ctx, request, kind);
  } catch (e) {
    return errorResponse(e);
  }
}
