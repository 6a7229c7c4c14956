/**
 * "Is this change real?": two runs, two stages (by name, e.g. a sweep point, or by key) compared
 * on their stored timing samples, per configuration and metric — the difference of the medians
 * with a bootstrap interval and a Mann–Whitney test.
 */
import type { LabDatabase } from "../engine/store.ts";
import { LabError } from "../engine/errors.ts";
import { compareSamples } from "../models/profile/stats.ts";

/** One side of a comparison: timing stages by name. */
interface Side {
  what: string;
  stages: { name: string; key: string; noisy: boolean }[];
}

/** One line of a comparison. */
export interface CompareRow {
  stage: string;
  config: string;
  metric: string;
  n_a: number;
  n_b: number;
  median_a: number;
  median_b: number;
  /** median_b / median_a − 1, and its 95% bootstrap interval. */
  change: number;
  change_lo: number;
  change_hi: number;
  p: number;
  verdict: string;
}

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Metrics where a larger value is better; the others are times. */
const HIGHER_IS_BETTER = /_tps$/;

async function timedStages(
  db: LabDatabase,
  where: string,
): Promise<{ name: string; key: string; noisy: boolean }[]> {
  const r = await db.query(
    `SELECT DISTINCT s.name, s.key, coalesce(c.noisy, false) AS noisy
     FROM (${where}) s LEFT JOIN timing_conditions c USING (key)
     WHERE s.key IN (SELECT DISTINCT key FROM timing_samples) ORDER BY s.name`,
  );
  return r.rows.map((x) => ({
    name: String(x.name),
    key: String(x.key),
    noisy: x.noisy === true,
  }));
}

/** Resolves a run id (or its prefix), a stage key (or prefix) or a stage name. */
async function resolveSide(db: LabDatabase, sel: string): Promise<Side> {
  const runs = (await db.query(
    `SELECT run_id FROM runs WHERE starts_with(run_id, ${lit(sel)}) ORDER BY run_id`,
  )).rows.map((r) => String(r.run_id));
  if (runs.length > 1 && !runs.includes(sel)) {
    throw new LabError(
      `"${sel}" matches ${runs.length} runs (${runs.join(", ")}): give more of it`,
    );
  }
  if (runs.length) {
    const run = runs.includes(sel) ? sel : runs[0];
    const stages = await timedStages(
      db,
      `SELECT name, key FROM stages WHERE run_id = ${lit(run)} AND status = 'ok'`,
    );
    if (!stages.length) throw new LabError(`run ${run} has no timing stages (profile) to compare`);
    return { what: `run ${run}`, stages };
  }
  if (/^[0-9a-f]{4,}$/.test(sel)) {
    const keys = await timedStages(
      db,
      `SELECT name, key FROM cache_entries WHERE starts_with(key, ${lit(sel)})`,
    );
    const distinct = [...new Set(keys.map((k) => k.key))];
    if (distinct.length > 1) {
      throw new LabError(`"${sel}" matches ${distinct.length} stage keys: give more of it`);
    }
    if (keys.length) {
      return { what: `stage ${keys[0].name} (${keys[0].key.slice(0, 12)})`, stages: [keys[0]] };
    }
  }
  const named = await timedStages(
    db,
    `SELECT name, key FROM latest_stages WHERE name = ${lit(sel)} AND status = 'ok'`,
  );
  if (named.length > 1) {
    throw new LabError(
      `stage name "${sel}" is in several pipelines (keys ${
        named.map((n) => n.key.slice(0, 12)).join(", ")
      }): give a key instead`,
    );
  }
  if (named.length) return { what: `stage ${sel}`, stages: named };
  throw new LabError(
    `"${sel}" is neither a run id, a timing stage's key nor a timing stage's name ` +
      `(lab query "select run_id from runs" and "select name, key from latest_stages where ` +
      `kind = 'profile'" list them)`,
  );
}

/** Compares A and B; `metrics` narrows the metrics (default: all stored). */
export async function compareTimings(
  db: LabDatabase,
  a: string,
  b: string,
  opts: { metrics?: string[] } = {},
): Promise<
  {
    a: string;
    b: string;
    rows: CompareRow[];
    unmatched: string[];
    pairs: { stage: string; a: string; b: string }[];
  }
> {
  const sa = await resolveSide(db, a), sb = await resolveSide(db, b);
  // Stages pair up by name between two runs; two single stages pair with each other.
  const pairs: [string, { key: string; noisy: boolean }, { key: string; noisy: boolean }][] = [];
  const unmatched: string[] = [];
  if (sa.stages.length === 1 && sb.stages.length === 1) {
    const [x] = sa.stages, [y] = sb.stages;
    pairs.push([x.name === y.name ? x.name : `${x.name} → ${y.name}`, x, y]);
  } else {
    const byName = new Map(sb.stages.map((s) => [s.name, s]));
    for (const s of sa.stages) {
      const other = byName.get(s.name);
      if (other) pairs.push([s.name, s, other]);
      else unmatched.push(`${s.name} only in A`);
      byName.delete(s.name);
    }
    for (const name of byName.keys()) unmatched.push(`${name} only in B`);
  }
  const rows: CompareRow[] = [];
  for (const [stage, x, y] of pairs) {
    const r = await db.query(
      `SELECT key, batch, prompt_tokens, new_tokens, kv_cache, metric, list(value ORDER BY repeat, step) AS vals
       FROM timing_samples WHERE key IN (${lit(x.key)}, ${lit(y.key)})
       GROUP BY ALL ORDER BY batch, prompt_tokens, new_tokens, kv_cache DESC, metric`,
    );
    const groups = new Map<string, { a?: number[]; b?: number[] }>();
    for (const row of r.rows) {
      const metric = String(row.metric);
      if (opts.metrics?.length && !opts.metrics.includes(metric)) continue;
      const config = `b${row.batch} p${row.prompt_tokens} n${row.new_tokens}${
        row.kv_cache === false ? " no-kv" : ""
      }`;
      const id = `${config}\u0000${metric}`;
      const g = groups.get(id) ?? {};
      const vals = (row.vals as unknown[]).map(Number);
      if (row.key === x.key) g.a = vals;
      if (row.key === y.key) g.b = vals;
      groups.set(id, g);
    }
    for (const [id, g] of groups) {
      const [config, metric] = id.split("\u0000");
      if (!g.a || !g.b) continue;
      const c = compareSamples(g.a, g.b);
      const better = HIGHER_IS_BETTER.test(metric) ? c.relDiff > 0 : c.relDiff < 0;
      let verdict = c.nA < 2 || c.nB < 2
        ? "too few samples"
        : c.significant
        ? (better ? "B better" : "B worse")
        : "no significant difference";
      if (x.noisy || y.noisy) verdict += " (noisy)";
      rows.push({
        stage,
        config,
        metric,
        n_a: c.nA,
        n_b: c.nB,
        median_a: c.medianA,
        median_b: c.medianB,
        change: c.relDiff,
        change_lo: c.relLo,
        change_hi: c.relHi,
        p: c.p,
        verdict,
      });
    }
  }
  return {
    a: sa.what,
    b: sb.what,
    rows,
    unmatched,
    pairs: pairs.map(([stage, x, y]) => ({ stage, a: x.key, b: y.key })),
  };
}
