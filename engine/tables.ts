/**
 * The DuckDB schema in one place. Later issues add columns or views here: the store creates
 * missing tables and columns on open (ALTER TABLE ... ADD COLUMN IF NOT EXISTS) and replaces
 * views, so an existing lab.duckdb follows along; `lab db rebuild` starts from scratch.
 */

export type ColumnType = "VARCHAR" | "DOUBLE" | "BIGINT" | "BOOLEAN" | "JSON" | "TIMESTAMP";

export interface TableDef {
  name: string;
  columns: [name: string, type: ColumnType][];
}

/** Tables the runner fills from run manifests and cache metadata. */
export const SYSTEM_TABLES: TableDef[] = [
  {
    name: "runs",
    columns: [
      ["run_id", "VARCHAR"],
      ["pipeline", "VARCHAR"],
      ["file", "VARCHAR"],
      ["started_at", "TIMESTAMP"],
      ["finished_at", "TIMESTAMP"],
      ["host", "VARCHAR"],
      ["device", "VARCHAR"],
      ["libtorch", "VARCHAR"],
      ["status", "VARCHAR"],
      ["n_stages", "BIGINT"],
      ["n_ran", "BIGINT"],
      ["n_cached", "BIGINT"],
      ["n_failed", "BIGINT"],
      ["n_skipped", "BIGINT"],
      ["env", "JSON"],
    ],
  },
  {
    name: "stages",
    columns: [
      ["key", "VARCHAR"],
      ["run_id", "VARCHAR"],
      ["pipeline", "VARCHAR"],
      ["name", "VARCHAR"],
      ["kind", "VARCHAR"],
      ["params", "JSON"],
      ["inputs", "JSON"],
      ["coords", "JSON"],
      ["cached", "BOOLEAN"],
      ["status", "VARCHAR"],
      ["wall_s", "DOUBLE"],
      ["error", "VARCHAR"],
      ["device", "VARCHAR"],
    ],
  },
  {
    // One row per cache entry (from its meta.json), whichever run produced it.
    name: "cache_entries",
    columns: [
      ["key", "VARCHAR"],
      ["kind", "VARCHAR"],
      ["name", "VARCHAR"],
      ["pipeline", "VARCHAR"],
      ["params", "JSON"],
      ["inputs", "JSON"],
      ["coords", "JSON"],
      ["env", "JSON"],
      ["source", "VARCHAR"],
      ["device", "VARCHAR"],
      ["host", "VARCHAR"],
      ["started_at", "TIMESTAMP"],
      ["finished_at", "TIMESTAMP"],
      ["wall_s", "DOUBLE"],
      ["n_records", "BIGINT"],
      // the environments row of what produced it
      ["env_id", "VARCHAR"],
    ],
  },
  {
    // One row per distinct provenance (meta.json's provenance): what produced a result. Every
    // row of a record table joins through its key: <table> JOIN provenance USING (key).
    name: "environments",
    columns: [
      ["env_id", "VARCHAR"],
      ["lab_commit", "VARCHAR"],
      ["lab_dirty", "BOOLEAN"],
      ["deno", "VARCHAR"],
      ["os", "VARCHAR"],
      ["libtorch", "VARCHAR"],
      ["libtorch_build", "VARCHAR"],
      ["shim", "VARCHAR"],
      ["kernel_isa", "VARCHAR"],
      ["threads", "BIGINT"],
      ["device_name", "VARCHAR"],
      ["cuda_arch", "VARCHAR"],
      ["cpu_model", "VARCHAR"],
      ["cpu_flags", "VARCHAR"],
      // anything else a stage's provider added (e.g. an engine's or endpoint's version)
      ["extra", "JSON"],
    ],
  },
];

/** The environments columns filled from a provenance object (the rest goes to `extra`). */
export const ENVIRONMENT_FIELDS = SYSTEM_TABLES.find((t) => t.name === "environments")!
  .columns.map(([c]) => c).filter((c) => c !== "env_id" && c !== "extra");

/** Tables stages write rows into with ctx.record(table, row); `key` (the stage's cache key) is added. */
export const RECORD_TABLES: TableDef[] = [
  { name: "metrics", columns: [["name", "VARCHAR"], ["value", "DOUBLE"], ["unit", "VARCHAR"]] },
  {
    name: "profiles",
    columns: [
      ["batch", "BIGINT"],
      ["prompt_tokens", "BIGINT"],
      ["new_tokens", "BIGINT"],
      ["ttft_ms", "DOUBLE"],
      ["prefill_tps", "DOUBLE"],
      ["decode_tps", "DOUBLE"],
      ["latency_p50_ms", "DOUBLE"],
      ["latency_p95_ms", "DOUBLE"],
      ["peak_mem_bytes", "BIGINT"],
      ["kv_cache", "BOOLEAN"],
      ["repeats", "BIGINT"],
      ["ttft_min_ms", "DOUBLE"],
      ["ttft_max_ms", "DOUBLE"],
      ["decode_tps_min", "DOUBLE"],
      ["decode_tps_max", "DOUBLE"],
      ["latency_p99_ms", "DOUBLE"],
      ["e2e_ms", "DOUBLE"],
      ["peak_reserved_bytes", "BIGINT"],
      ["memory_source", "VARCHAR"],
      ["weight_bytes", "BIGINT"],
      ["device", "VARCHAR"],
      // measured GPU power (nvidia-smi) and energy per generated token; NULL where unmeasured
      ["power_w", "DOUBLE"],
      ["energy_j_per_token", "DOUBLE"],
      // 95% bootstrap intervals of the medians over the repeats (the raw samples are in
      // timing_samples); step latency over every decode step of every repeat
      ["ttft_ci_lo_ms", "DOUBLE"],
      ["ttft_ci_hi_ms", "DOUBLE"],
      ["prefill_tps_ci_lo", "DOUBLE"],
      ["prefill_tps_ci_hi", "DOUBLE"],
      ["decode_tps_ci_lo", "DOUBLE"],
      ["decode_tps_ci_hi", "DOUBLE"],
      ["latency_ci_lo_ms", "DOUBLE"],
      ["latency_ci_hi_ms", "DOUBLE"],
      // other processes took a significant share of the cores meanwhile (timing_conditions)
      ["noisy", "BOOLEAN"],
      // the engine that ran the model: libtorch (the lab's own) or llama.cpp (libllama, GGUF)
      ["engine", "VARCHAR"],
    ],
  },
  {
    // Every timed repeat's raw figure, per configuration of a timing stage: what medians and
    // intervals are computed from, and what `lab compare` tests. latency_ms rows hold one
    // decode step each (step = its index); the others one repeat (step NULL).
    name: "timing_samples",
    columns: [
      ["batch", "BIGINT"],
      ["prompt_tokens", "BIGINT"],
      ["new_tokens", "BIGINT"],
      ["kv_cache", "BOOLEAN"],
      ["metric", "VARCHAR"],
      ["repeat", "BIGINT"],
      ["step", "BIGINT"],
      ["value", "DOUBLE"],
    ],
  },
  {
    // The conditions a timing stage ran under: load, CPU taken by other processes, the CPU.
    name: "timing_conditions",
    columns: [
      ["load1_before", "DOUBLE"],
      ["load1_after", "DOUBLE"],
      ["wall_s", "DOUBLE"],
      ["own_cpu_s", "DOUBLE"],
      ["other_cpu_s", "DOUBLE"],
      ["cores", "BIGINT"],
      ["others_share", "DOUBLE"],
      ["noisy", "BOOLEAN"],
      ["cpu_model", "VARCHAR"],
      ["cpu_flags", "VARCHAR"],
      ["governor", "VARCHAR"],
    ],
  },
  {
    // One row per linear module of a quantize stage.
    name: "quant_modules",
    columns: [
      ["module", "VARCHAR"],
      ["scheme", "VARCHAR"],
      ["params", "BIGINT"],
      ["bytes", "BIGINT"],
      ["bits_per_param", "DOUBLE"],
      ["rel_error", "DOUBLE"],
    ],
  },
  {
    // Dynamic batching replays: one row per request.
    name: "batching_requests",
    columns: [
      ["request", "BIGINT"],
      ["arrival_ms", "DOUBLE"],
      ["prompt_tokens", "BIGINT"],
      ["output_tokens", "BIGINT"],
      ["batch", "BIGINT"],
      ["queue_ms", "DOUBLE"],
      ["ttft_ms", "DOUBLE"],
      ["latency_ms", "DOUBLE"],
    ],
  },
  {
    // serve_bench: one row per request sent to an OpenAI-compatible endpoint, per rate ("inf":
    // all at once). Failed requests keep their status and error; itl_ms lists every gap.
    name: "serving_requests",
    columns: [
      ["rate", "VARCHAR"],
      ["request", "BIGINT"],
      ["sent_ms", "DOUBLE"],
      ["status", "BIGINT"],
      ["ok", "BOOLEAN"],
      ["error", "VARCHAR"],
      ["ttft_ms", "DOUBLE"],
      ["tpot_ms", "DOUBLE"],
      ["e2e_ms", "DOUBLE"],
      ["itl_ms", "JSON"],
      ["prompt_tokens", "BIGINT"],
      ["output_tokens", "BIGINT"],
      // "usage" (the server's count), "tokenizer" (counted here) or "chunks"
      ["token_source", "VARCHAR"],
    ],
  },
  {
    // serve_bench: one row per rate: throughput, goodput under the SLOs, latency percentiles.
    name: "serving_summary",
    columns: [
      ["rate", "VARCHAR"],
      ["rate_per_s", "DOUBLE"],
      ["model", "VARCHAR"],
      ["endpoint", "VARCHAR"],
      ["max_concurrency", "BIGINT"],
      ["slo_ttft_ms", "DOUBLE"],
      ["slo_tpot_ms", "DOUBLE"],
      ["requests", "BIGINT"],
      ["completed", "BIGINT"],
      ["failed", "BIGINT"],
      ["duration_s", "DOUBLE"],
      ["requests_per_s", "DOUBLE"],
      ["output_tokens_per_s", "DOUBLE"],
      ["goodput_per_s", "DOUBLE"],
      ["slo_attainment", "DOUBLE"],
      ["ttft_mean_ms", "DOUBLE"],
      ["ttft_p50_ms", "DOUBLE"],
      ["ttft_p90_ms", "DOUBLE"],
      ["ttft_p99_ms", "DOUBLE"],
      ["tpot_mean_ms", "DOUBLE"],
      ["tpot_p50_ms", "DOUBLE"],
      ["tpot_p90_ms", "DOUBLE"],
      ["tpot_p99_ms", "DOUBLE"],
      ["itl_mean_ms", "DOUBLE"],
      ["itl_p50_ms", "DOUBLE"],
      ["itl_p90_ms", "DOUBLE"],
      ["itl_p99_ms", "DOUBLE"],
      ["e2e_mean_ms", "DOUBLE"],
      ["e2e_p50_ms", "DOUBLE"],
      ["e2e_p90_ms", "DOUBLE"],
      ["e2e_p99_ms", "DOUBLE"],
    ],
  },
  {
    name: "evals",
    columns: [
      ["dataset", "VARCHAR"],
      ["metric", "VARCHAR"],
      ["value", "DOUBLE"],
      ["tokens", "BIGINT"],
      // libtorch or llama.cpp; both score the same token ids (the lab's tokenizer)
      ["engine", "VARCHAR"],
    ],
  },
  {
    name: "train_steps",
    columns: [
      ["step", "BIGINT"],
      ["loss", "DOUBLE"],
      ["lr", "DOUBLE"],
      ["tokens_per_s", "DOUBLE"],
      ["peak_mem_bytes", "BIGINT"],
      ["grad_norm", "DOUBLE"],
      ["tokens", "BIGINT"],
    ],
  },
  {
    name: "layer_sensitivity",
    columns: [
      ["layer", "BIGINT"],
      ["module", "VARCHAR"],
      ["mse", "DOUBLE"],
      ["cosine", "DOUBLE"],
      ["rel_error", "DOUBLE"],
      // "isolated" (each layer fed the reference's input), "end_to_end", or "weight"
      ["mode", "VARCHAR"],
      ["tokens", "BIGINT"],
    ],
  },
  {
    // Disagreements between metrics (e.g. PPL near the base while KLD rose sharply).
    name: "warnings",
    columns: [
      ["kind", "VARCHAR"],
      ["severity", "VARCHAR"],
      ["message", "VARCHAR"],
      ["metric", "VARCHAR"],
      ["value", "DOUBLE"],
    ],
  },
];

/** Static views, created after the tables (and after the generated views below). */
export const VIEWS: { name: string; sql: string }[] = [
  {
    // The latest state of every stage name per pipeline.
    name: "latest_stages",
    sql: `SELECT s.* FROM stages s JOIN runs r USING (run_id)
          QUALIFY row_number() OVER (PARTITION BY s.pipeline, s.name ORDER BY r.started_at DESC, r.run_id DESC) = 1`,
  },
  {
    // One row per finetune stage (latest run): method, size, cost and quality before -> after.
    name: "finetune_summary",
    sql: `SELECT s.pipeline, s.name, s.key,
            json_extract_string(s.params, '$.method') AS method,
            CASE WHEN json_extract_string(s.params, '$.method') = 'full' THEN NULL
              ELSE TRY_CAST(json_extract(s.params, '$.r') AS BIGINT) END AS r,
            max(m.value) FILTER (WHERE m.name = 'trainable_params') AS trainable_params,
            max(m.value) FILTER (WHERE m.name = 'total_params') AS total_params,
            max(m.value) FILTER (WHERE m.name = 'peak_mem_bytes') / 1048576 AS peak_mb,
            max(m.value) FILTER (WHERE m.name = 'mem_weights_bytes') / 1048576 AS weights_mb,
            max(m.value) FILTER (WHERE m.name = 'train_tokens_per_s') AS tokens_per_s,
            max(m.value) FILTER (WHERE m.name = 'train_time_s') AS train_s,
            max(m.value) FILTER (WHERE m.name = 'val_loss_before') AS val_loss_before,
            max(m.value) FILTER (WHERE m.name = 'val_loss_after') AS val_loss_after
          FROM latest_stages s JOIN metrics m USING (key)
          WHERE s.kind = 'finetune' AND s.status IN ('ok', 'cached')
          GROUP BY ALL`,
  },
  {
    // One row per quantize stage of each pipeline's latest run: memory, speed and quality of
    // that configuration (speed at the smallest batch and prompt profiled with the KV cache).
    // fallback_modules counts the int4 modules that took a smaller group or int8 because the
    // group did not divide their width, so "int4-g128" is never silently partly int8: a
    // module's assigned scheme is its `keep` glob's, else the stage's, and a fallback is a
    // module stored in a smaller int4 group or in int8 than that. (Modules an advise input
    // keeps in int8 under an int4 scheme count too: their globs are not in the params.)
    // lm_head and the embedding table take int8 by default under 4-bit schemes: not a fallback.
    // engine: libtorch (the lab's schemes) or llama.cpp (quantize with engine "llama.cpp");
    // a llama.cpp row's bits_per_param and weight_mb count the whole model as libllama holds it.
    name: "quant_tradeoff",
    sql: `WITH q AS (
            SELECT pipeline, key, name, json_extract_string(params, '$.scheme') AS scheme,
                   coalesce(json_extract_string(params, '$.engine'), 'libtorch') AS engine,
                   json_extract_string(inputs, '$.model') AS base_key, coords, params
            FROM latest_stages WHERE kind = 'quantize' AND status = 'ok'),
          keeps AS (
            SELECT key, unnest(map_entries(CAST(coalesce(json_extract(params, '$.keep'), '{}')
                     AS MAP(VARCHAR, VARCHAR)))) AS kv
            FROM q),
          assigned AS (
            SELECT qm.key, qm.module, qm.scheme,
                   coalesce(max(k.kv.value), CASE WHEN qm.module IN ('lm_head', 'model.embed_tokens')
                     THEN qm.scheme ELSE any_value(q.scheme) END) AS assigned
            FROM quant_modules qm JOIN q ON q.key = qm.key
            LEFT JOIN keeps k ON k.key = qm.key AND regexp_full_match(qm.module,
              '(?:.*\\.)?' || replace(regexp_escape(k.kv.key), '\\*', '.*'))
            GROUP BY qm.key, qm.module, qm.scheme),
          fb AS (
            SELECT key,
                   count(*) FILTER (WHERE fell)::BIGINT AS fallback_modules,
                   string_agg(DISTINCT scheme, ', ' ORDER BY scheme) FILTER (WHERE fell)
                     AS fallback_schemes
            FROM (SELECT key, scheme, a, starts_with(a, 'int4-g') AND scheme <> a AND
                         (scheme = 'int8' OR (starts_with(scheme, 'int4-g') AND
                          TRY_CAST(substr(scheme, 7) AS INT) < TRY_CAST(substr(a, 7) AS INT)))
                         AS fell
                  FROM (SELECT key, scheme,
                               CASE WHEN assigned = 'int4' THEN 'int4-g128' ELSE assigned END AS a
                        FROM assigned))
            GROUP BY key),
          children AS (
            SELECT key, kind, json_extract_string(inputs, '$.model') AS model_key
            FROM latest_stages WHERE kind IN ('profile', 'evaluate') AND status = 'ok'),
          m AS (
            SELECT key, max(value) FILTER (WHERE name = 'weight_bytes') AS weight_bytes,
                   max(value) FILTER (WHERE name = 'bits_per_param') AS bits_per_param,
                   max(value) FILTER (WHERE name = 'mean_rel_error') AS mean_rel_error
            FROM metrics GROUP BY key),
          prof AS (
            SELECT c.model_key, p.*,
                   max(p.peak_mem_bytes) OVER (PARTITION BY c.model_key) AS peak_all,
                   row_number() OVER (PARTITION BY c.model_key
                     ORDER BY (p.kv_cache IS NOT false) DESC, p.batch, p.prompt_tokens, p.new_tokens) AS rn
            FROM profiles p JOIN children c ON c.key = p.key AND c.kind = 'profile'),
          ev AS (
            SELECT c.model_key,
                   max(e.value) FILTER (WHERE e.metric = 'ppl') AS ppl,
                   max(e.value) FILTER (WHERE e.metric = 'bits_per_byte') AS bits_per_byte,
                   max(e.value) FILTER (WHERE e.metric = 'accuracy') AS accuracy
            FROM evals e JOIN children c ON c.key = e.key AND c.kind = 'evaluate'
            GROUP BY c.model_key),
          an AS (
            SELECT json_extract_string(s.inputs, '$.variant') AS model_key,
                   max(m.value) FILTER (WHERE m.name = 'kld_mean') AS kld_mean,
                   max(m.value) FILTER (WHERE m.name = 'top1_agreement') AS top1_agreement
            FROM latest_stages s JOIN metrics m USING (key)
            WHERE s.kind = 'analyze' AND s.status = 'ok' GROUP BY 1),
          base AS (
            SELECT q.pipeline, q.base_key, ev.ppl AS fp32_ppl FROM q JOIN ev ON ev.model_key = q.key
            WHERE q.scheme = 'fp32')
          SELECT q.pipeline, q.scheme AS configuration, q.engine, q.name AS stage,
                 m.weight_bytes / 1e6 AS weight_mb, m.bits_per_param, m.mean_rel_error,
                 coalesce(fb.fallback_modules, 0) AS fallback_modules, fb.fallback_schemes,
                 prof.peak_all / 1e6 AS peak_mb, prof.ttft_ms, prof.prefill_tps, prof.decode_tps,
                 prof.batch AS profile_batch, prof.prompt_tokens AS profile_prompt_tokens,
                 ev.ppl, ev.ppl - base.fp32_ppl AS delta_ppl, ev.bits_per_byte, ev.accuracy,
                 an.kld_mean, an.top1_agreement,
                 q.key, q.coords
          FROM q
          LEFT JOIN m ON m.key = q.key
          LEFT JOIN fb ON fb.key = q.key
          LEFT JOIN prof ON prof.model_key = q.key AND prof.rn = 1
          LEFT JOIN ev ON ev.model_key = q.key
          LEFT JOIN an ON an.model_key = q.key
          LEFT JOIN base ON base.pipeline = q.pipeline AND base.base_key = q.base_key`,
  },
  {
    // Pareto marking over memory (weight MB, lower is better), speed (decode tokens/s, higher)
    // and quality (PPL, lower), within each pipeline: dominated when another configuration is
    // at least as good on all three and better on one. Rows missing a figure are not ranked.
    name: "pareto",
    sql: `WITH t AS (SELECT * FROM quant_tradeoff
                     WHERE weight_mb IS NOT NULL AND decode_tps IS NOT NULL AND ppl IS NOT NULL)
          SELECT a.pipeline, a.configuration, a.engine, a.weight_mb, a.decode_tps, a.ppl, a.key,
                 EXISTS (SELECT 1 FROM t b WHERE b.pipeline = a.pipeline AND b.key <> a.key
                   AND b.weight_mb <= a.weight_mb AND b.decode_tps >= a.decode_tps AND b.ppl <= a.ppl
                   AND (b.weight_mb < a.weight_mb OR b.decode_tps > a.decode_tps OR b.ppl < a.ppl))
                   AS dominated,
                 NOT EXISTS (SELECT 1 FROM t b WHERE b.pipeline = a.pipeline AND b.key <> a.key
                   AND b.weight_mb <= a.weight_mb AND b.ppl <= a.ppl
                   AND (b.weight_mb < a.weight_mb OR b.ppl < a.ppl)) AS front_memory_quality
          FROM t a`,
  },
  {
    // Each cache entry with what produced it: join any result table on key.
    name: "provenance",
    sql: `SELECT c.key, c.kind, c.name, c.pipeline, c.finished_at, e.*
          FROM cache_entries c LEFT JOIN environments e USING (env_id)`,
  },
  {
    // serve_bench results with what was served: the model input's stage, its scheme (a quantize
    // input's, else the model's dtype label) and the sweep coordinates of the bench stage.
    name: "serving_results",
    sql: `SELECT s.pipeline, s.name AS stage, coalesce(
              json_extract_string(m.params, '$.scheme'), sum.model) AS scheme,
            m.name AS model_stage, sum.*, s.coords
          FROM serving_summary sum
          JOIN latest_stages s ON s.key = sum.key
          LEFT JOIN latest_stages m ON m.pipeline = s.pipeline
            AND m.key = json_extract_string(s.inputs, '$.model')`,
  },
  {
    name: "failures",
    sql: `SELECT s.run_id, r.started_at, s.pipeline, s.name, s.kind, s.key, s.error
          FROM stages s JOIN runs r USING (run_id) WHERE s.status = 'failed'`,
  },
];

/**
 * SQL macros, created with the views. `compare(a, b)` is `lab compare` for two stage keys (or
 * key prefixes) in SQL: per configuration and metric of timing_samples, both medians, the
 * relative change and a Mann–Whitney test by the normal approximation (no tie correction; the
 * CLI adds the exact test for small samples and a bootstrap interval of the change).
 */
export const MACROS: { name: string; sql: string }[] = [
  {
    // Abramowitz–Stegun 7.1.26 through erf; error below 1.5e-7.
    name: "normal_cdf",
    sql: `(z) AS (
      WITH t AS (SELECT 1 / (1 + 0.3275911 * abs(z) / sqrt(2)) AS t, abs(z) / sqrt(2) AS x)
      SELECT CASE WHEN z >= 0 THEN (1 + e) / 2 ELSE (1 - e) / 2 END
      FROM (SELECT 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t
                  - 0.284496736) * t + 0.254829592) * t * exp(-x * x) AS e FROM t))`,
  },
  {
    name: "compare",
    sql: `(a, b) AS TABLE
      WITH s AS (
        SELECT CASE WHEN starts_with(key, a) THEN 'a' ELSE 'b' END AS side,
               batch, prompt_tokens, new_tokens, kv_cache, metric, value
        FROM timing_samples WHERE starts_with(key, a) OR starts_with(key, b)),
      g AS (
        SELECT batch, prompt_tokens, new_tokens, kv_cache, metric,
               count(*) FILTER (WHERE side = 'a') AS n_a,
               count(*) FILTER (WHERE side = 'b') AS n_b,
               median(value) FILTER (WHERE side = 'a') AS median_a,
               median(value) FILTER (WHERE side = 'b') AS median_b
        FROM s GROUP BY ALL),
      u AS (
        SELECT x.batch, x.prompt_tokens, x.new_tokens, x.kv_cache, x.metric,
               sum(CASE WHEN y.value > x.value THEN 1.0 WHEN y.value = x.value THEN 0.5
                        ELSE 0.0 END) AS u_b
        FROM s x JOIN s y USING (batch, prompt_tokens, new_tokens, kv_cache, metric)
        WHERE x.side = 'a' AND y.side = 'b' GROUP BY ALL),
      z AS (
        SELECT g.*, u.u_b,
               (abs(u.u_b - g.n_a * g.n_b / 2) - 0.5)
                 / sqrt(g.n_a * g.n_b * (g.n_a + g.n_b + 1) / 12) AS z
        FROM g JOIN u USING (batch, prompt_tokens, new_tokens, kv_cache, metric)
        WHERE g.n_a > 0 AND g.n_b > 0)
      SELECT batch, prompt_tokens, new_tokens, kv_cache, metric, n_a, n_b, median_a, median_b,
             median_b / median_a - 1 AS change,
             least(1, 2 * (1 - normal_cdf(greatest(z, 0)))) AS p,
             least(1, 2 * (1 - normal_cdf(greatest(z, 0)))) < 0.05 AS significant
      FROM z ORDER BY batch, prompt_tokens, new_tokens, kv_cache DESC, metric`,
  },
];

/**
 * Views generated from the data on every load (their columns depend on it):
 * - stages_wide: stages plus one typed column per sweep coordinate;
 * - results_wide: per stage key (latest run), its coordinates, scalar params and one column
 *   per metric name (metrics pivoted), for questions like "loss by rank and lr".
 */
export const GENERATED_VIEWS = ["stages_wide", "results_wide"] as const;

/** Names stages may not record into. */
export const RESERVED_TABLES = new Set([
  ...SYSTEM_TABLES.map((t) => t.name),
  ...VIEWS.map((v) => v.name),
  ...GENERATED_VIEWS,
]);

export const RECORD_TABLE_BY_NAME: Map<string, TableDef> = new Map(
  RECORD_TABLES.map((t) => [t.name, t]),
);
