// The lab's own server as a child process for a benchmark: started on a free loopback port,
// ready once /v1/models answers, and always stopped (also when the benchmark fails).
import { LabError } from "../errors.ts";

/** A running `lab serve-model` process. */
export interface ServerProcess {
  url: string;
  modelName: string;
  /** Stops it (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Options of startServerProcess. */
export interface ServerProcessOptions {
  modelDir: string;
  maxBatch: number;
  maxWaiting: number;
  maxContext?: number;
  /** Seconds to wait for /v1/models (default 120). */
  readyTimeoutS?: number;
  /** Lines of the server's output go here. */
  log?: (line: string) => void;
}

const LAB = new URL("../tasks/lab.ts", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);

/** Starts `lab serve-model` on 127.0.0.1 (a free port) and waits until it answers. */
export async function startServerProcess(o: ServerProcessOptions): Promise<ServerProcess> {
  const args = ["run", "-A", "--config", CONFIG.pathname, LAB.pathname, "serve-model"];
  args.push("--model", o.modelDir, "--port", "0", "--host", "127.0.0.1");
  args.push("--max-batch", String(o.maxBatch), "--max-waiting", String(o.maxWaiting));
  if (o.maxContext) args.push("--max-context", String(o.maxContext));
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .spawn();
  const status = child.status;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await status;
    clearTimeout(killer);
  };
  const stderr: string[] = [];
  drain(child.stderr, (l) => (stderr.push(l), o.log?.(l)));
  try {
    const line = await firstLine(child.stdout, status, o.log, (o.readyTimeoutS ?? 120) * 1000);
    const m = /^serving (\S+) on (\S+)/.exec(line ?? "");
    if (!m) {
      throw new LabError(
        `serve_bench: the lab server did not start for ${o.modelDir}: ${
          stderr.join(" ").slice(-500) || "no output"
        }`,
      );
    }
    await waitReady(m[2], (o.readyTimeoutS ?? 120) * 1000);
    return { url: m[2], modelName: m[1], stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function drain(s: ReadableStream<Uint8Array>, each: (line: string) => void) {
  for await (const l of lines(s)) each(l);
}

async function* lines(s: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

/** The first stdout line (the rest is logged), or null when the process exits or time runs out. */
async function firstLine(
  s: ReadableStream<Uint8Array>,
  status: Promise<Deno.CommandStatus>,
  log: ((l: string) => void) | undefined,
  timeoutMs: number,
): Promise<string | null> {
  const it = lines(s);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    it.next().then((r) => (r.done ? null : r.value)),
    status.then(() => null),
    new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs))),
  ]);
  clearTimeout(timer);
  (async () => {
    for await (const l of it) log?.(l);
  })().catch(() => {});
  return first;
}

/** Polls GET /v1/models until it answers 200. */
async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < end) {
    try {
      const res = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new LabError(
    `serve_bench: ${url}/v1/models did not answer within ${timeoutMs} ms (${last})`,
  );
}
