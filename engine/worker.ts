// The worker side of an executor: `lab run-node KEY` re-plans the pipeline and runs one node.
import { resolve } from "node:path";
import { executeNode, type NodeResult } from "./node_execution.ts";
import { WORKER_MARK } from "./executor.ts";
import { localEnvironmentFor, pinEnvironment } from "./environment.ts";
import { canonicalJson } from "./canonical.ts";
import { loadPipelineFile, planPipeline } from "./plan.ts";

const enc = new TextEncoder();
function emit(msg: unknown): void {
  const data = enc.encode(WORKER_MARK + JSON.stringify(msg) + "\n");
  let off = 0;
  while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));
}

export interface WorkerOptions {
  pipeline: string;
  key: string;
  results: string;
  /** Replace an existing entry (the node was forced). */
  replace?: boolean;
  /** Abort when stdin closes (the coordinator died). */
  watchStdin?: boolean;
}

/**
 * The worker side of the local executor (`lab run-node`): re-plans the pipeline without cache
 * checks, finds the node by key, runs it into the cache, and reports on stdout. Exit code 0
 * when the stage finished, 1 when it failed (the result line says why), 130 when interrupted.
 */
export async function runNodeWorker(opts: WorkerOptions): Promise<number> {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  if (opts.watchStdin) {
    (async () => {
      try {
        for await (const _ of Deno.stdin.readable) { /* the coordinator never writes */ }
      } catch { /* closed */ }
      ac.abort(new Error("coordinator went away"));
    })();
  }
  let result: NodeResult;
  try {
    const keyEnv = pinnedKeyEnvironment();
    const loaded = await loadPipelineFile(opts.pipeline);
    const plan = await planPipeline(loaded, {
      resultsDir: resolve(opts.results),
      checkCache: false,
    });
    const found = plan.byKey.get(opts.key);
    if (!found) {
      result = {
        status: "failed",
        wallS: 0,
        error: {
          message: `no stage with key ${opts.key} in ${loaded.displayFile}: this worker plans it ` +
            `differently from the coordinator (was the pipeline or a stage edited during the run?)`,
        },
      };
    } else {
      const here = localEnvironmentFor(found.stage.device);
      if (keyEnv && canonicalJson(here) !== canonicalJson(found.env)) {
        emit({
          t: "log",
          message: `this node's environment ${canonicalJson(here)} differs from the ` +
            `coordinator's ${canonicalJson(found.env)}, which the key keeps; provenance ` +
            `records this node's`,
        });
      }
      found.forced = !!opts.replace;
      result = await executeNode(found, plan, {
        onProgress: (done, total, message) => emit({ t: "progress", done, total, message }),
        onLog: (message) => emit({ t: "log", message }),
      }, ac.signal);
    }
  } catch (e) {
    result = {
      status: "failed",
      wallS: 0,
      error: { message: (e as Error)?.message ?? String(e), stack: (e as Error)?.stack },
    };
  }
  const { meta: _meta, ...slim } = result;
  emit({ t: "result", result: slim });
  // A failed stage exits 1 so that a batch system (Slurm) records the job as FAILED too.
  return result.status === "interrupted" ? 130 : result.status === "failed" ? 1 : 0;
}

/** The variable through which a remote executor passes the coordinator's key environment. */
export const KEY_ENV_VARIABLE = "LAB_KEY_ENV";

/** Pins the environment LAB_KEY_ENV carries (JSON: device -> environment); returns it. */
function pinnedKeyEnvironment(): Record<string, Record<string, unknown>> | undefined {
  const text = Deno.env.get(KEY_ENV_VARIABLE);
  if (!text) return undefined;
  const byDevice = JSON.parse(text);
  pinEnvironment(byDevice);
  return byDevice;
}
