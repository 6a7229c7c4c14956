import { resolve } from "node:path";
import { executeNode, type NodeResult } from "./execute.ts";
import { WORKER_MARK } from "./executor.ts";
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
          message:
            `no stage with key ${opts.key} in ${loaded.displayFile} (was it edited during the run?)`,
        },
      };
    } else {
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
