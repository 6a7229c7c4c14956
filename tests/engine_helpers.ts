// Shared helpers for the engine tests (custom stages only; no torch).
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const ENGINE = new URL("../engine/mod.ts", import.meta.url).href;
export const FIXTURE_STAGES = new URL("./fixtures/pipelines/stages.ts", import.meta.url).href;
export const FIXTURES = fileURLToPath(new URL("./fixtures/pipelines/", import.meta.url));

/** A scratch folder with a results folder inside; files written into it may import ENGINE. */
export function tempProject(): {
  dir: string;
  results: string;
  write(name: string, text: string): string;
} {
  const dir = Deno.makeTempDirSync({ prefix: "lab-test-" });
  return {
    dir,
    results: join(dir, "results"),
    write(name, text) {
      const p = join(dir, name);
      Deno.writeTextFileSync(p, text);
      return p;
    },
  };
}

/** A pipeline file over the fixture stages: source -> scale per factor -> combine. */
export function basicPipeline(
  name: string,
  factors: number[],
  opts: { fail?: number[] } = {},
): string {
  return `import { pipeline } from "${ENGINE}";
import { combine, scale, source } from "${FIXTURE_STAGES}";
export default pipeline(${JSON.stringify(name)}, ({ sweep }) => {
  const src = source({ n: 4 });
  const parts = [];
  for (const factor of sweep("factor", ${JSON.stringify(factors)})) {
    parts.push(scale(src, { factor, fail: ${JSON.stringify(opts.fail ?? [])}.includes(factor) }));
  }
  combine(parts);
});
`;
}

/** Runs the lab CLI in a subprocess. */
/** Deno's arguments for running the lab CLI with `args`. */
export function labCommandArgs(args: string[]): string[] {
  return [
    "run",
    "-A",
    "--quiet",
    "--config",
    join(ROOT, "deno.json"),
    join(ROOT, "tasks/lab.ts"),
    ...args,
  ];
}

export async function lab(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: labCommandArgs(args),
    cwd: opts.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Rows of a read-only query on a results folder's database. */
export async function queryRows(results: string, sql: string): Promise<Record<string, unknown>[]> {
  const { queryResults } = await import("../engine/store.ts");
  return await queryResults(results, sql);
}

/** Names of stages by status in a run summary. */
export function namesWith(
  summary: { outcomes: { node: { name: string }; status: string }[] },
  status: string,
): string[] {
  return summary.outcomes.filter((o) => o.status === status).map((o) => o.node.name).sort();
}

/** Waits until `cond` holds (polling), or throws after `ms`. */
export async function until(cond: () => boolean, ms = 20_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
