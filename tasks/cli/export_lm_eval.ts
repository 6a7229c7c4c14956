// `lab export --lm-eval DIR`: each evaluate stage's results.json (lm-eval's shape), one folder per
// stage.
import { join } from "node:path";
import { CacheStore } from "../../engine/cache.ts";
import type { LabDatabase } from "../../engine/store.ts";

/** A path segment made of a pipeline or stage name, safe as a folder name. */
function segment(name: string): string {
  return name.replace(/[^\w.=-]+/g, "_");
}

/** Copies the latest results.json of every evaluate stage to OUT/<pipeline>/<stage>/; returns how many. */
export async function exportLmEval(
  db: LabDatabase,
  resultsDir: string,
  out: string,
): Promise<number> {
  const r = await db.query(
    "SELECT key, pipeline, name FROM latest_stages WHERE kind = 'evaluate' AND status = 'ok' " +
      "ORDER BY pipeline, name",
  );
  const cache = new CacheStore(resultsDir);
  let n = 0;
  for (const row of r.rows) {
    const src = join(cache.entryDir(String(row.key)), "artifacts", "results.json");
    try {
      Deno.statSync(src);
    } catch {
      continue; // An evaluate stage over a text or JSONL dataset has no lm-eval results.
    }
    const dir = join(out, segment(String(row.pipeline)), segment(String(row.name)));
    Deno.mkdirSync(dir, { recursive: true });
    Deno.copyFileSync(src, join(dir, "results.json"));
    console.log(`${row.pipeline}/${row.name}/results.json`);
    n++;
  }
  console.log(`wrote ${n} lm-eval results file${n === 1 ? "" : "s"} to ${out}`);
  return n;
}
