/**
 * The SQL behind every report section, in one place: the report prints each query under its
 * chart, so what a reader sees is exactly what they can paste into `lab query`.
 */

/** One report section's query and what to say when it has no rows. */
export interface SectionQuery {
  id: string;
  title: string;
  /** Tables or views the query reads; a missing one means "no data yet", not an error. */
  needs: string[];
  sql: string;
  /** The hint shown when there are no rows: "no data yet: run …". */
  empty: string;
}

const SWEEP_HINT = "run a quantization sweep: deno task sweep (or lab run pipelines/sweep.ts)";

export const TRADEOFF: SectionQuery = {
  id: "tradeoff",
  title: "Trade-offs per configuration",
  needs: ["quant_tradeoff", "pareto"],
  sql:
    `SELECT t.pipeline, t.configuration, t.engine, t.weight_mb, t.bits_per_param, t.fallback_modules, t.peak_mb,
       t.ttft_ms, t.prefill_tps, t.decode_tps, t.ppl, t.delta_ppl, t.bits_per_byte,
       t.accuracy, p.dominated, p.front_memory_quality
FROM quant_tradeoff t
LEFT JOIN pareto p ON p.key = t.key AND p.pipeline = t.pipeline
ORDER BY t.pipeline, t.weight_mb DESC NULLS LAST, t.configuration`,
  empty: SWEEP_HINT,
};

export const MEMORY_QUALITY: SectionQuery = {
  id: "memory_quality",
  title: "Memory vs quality",
  needs: ["pareto"],
  sql: `SELECT pipeline, configuration, engine, weight_mb, ppl, decode_tps,
       front_memory_quality AS on_front, dominated
FROM pareto
ORDER BY pipeline, weight_mb`,
  empty: SWEEP_HINT + " with profile and evaluate stages",
};

export const SPEED_QUALITY: SectionQuery = {
  id: "speed_quality",
  title: "Speed vs quality",
  needs: ["quant_tradeoff"],
  // On the speed/quality front when no configuration of the same pipeline is faster with a
  // perplexity as low or lower, and none as fast has a lower one (one sort, not n² pairs).
  sql: `WITH t AS (
  SELECT pipeline, configuration, engine, decode_tps, ppl, weight_mb FROM quant_tradeoff
  WHERE decode_tps IS NOT NULL AND ppl IS NOT NULL),
w AS (
  SELECT *,
    min(ppl) OVER (PARTITION BY pipeline ORDER BY decode_tps DESC
                   RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP) AS best_faster,
    min(ppl) OVER (PARTITION BY pipeline, decode_tps) AS best_as_fast
  FROM t)
SELECT pipeline, configuration, engine, decode_tps, ppl, weight_mb,
       ppl <= best_as_fast AND (best_faster IS NULL OR best_faster > ppl) AS on_front
FROM w
ORDER BY pipeline, decode_tps`,
  empty: SWEEP_HINT + " with profile and evaluate stages",
};

export const PREFILL_DECODE: SectionQuery = {
  id: "prefill_decode",
  title: "Prefill vs decode throughput by batch size",
  needs: ["profiles", "latest_stages"],
  sql: `WITH prof AS (
  SELECT s.pipeline, s.key, json_extract_string(s.inputs, '$.model') AS model_key
  FROM latest_stages s WHERE s.kind = 'profile' AND s.status = 'ok'),
model AS (
  SELECT key, any_value(coalesce(json_extract_string(params, '$.scheme'), name)) AS label
  FROM latest_stages GROUP BY key)
SELECT prof.pipeline, coalesce(model.label, left(prof.key, 8)) AS configuration, p.batch,
       avg(p.prefill_tps) AS prefill_tps, avg(p.decode_tps) AS decode_tps,
       avg(p.ttft_ms) AS ttft_ms,
       avg(p.prefill_tps_ci_lo) AS prefill_tps_lo, avg(p.prefill_tps_ci_hi) AS prefill_tps_hi,
       avg(p.decode_tps_ci_lo) AS decode_tps_lo, avg(p.decode_tps_ci_hi) AS decode_tps_hi,
       coalesce(bool_or(p.noisy), false) AS noisy
FROM profiles p
JOIN prof ON prof.key = p.key
LEFT JOIN model ON model.key = prof.model_key
WHERE p.kv_cache IS NOT false
GROUP BY ALL
ORDER BY prof.pipeline, configuration, p.batch`,
  empty: "run a pipeline with a profile stage (e.g. deno task sweep)",
};

export const SENSITIVITY: SectionQuery = {
  id: "sensitivity",
  title: "Layer × module sensitivity",
  needs: ["layer_sensitivity", "latest_stages"],
  // One mode only (isolated when measured, else end-to-end, else the weight error), and for
  // the activation modes the output MSE; for the weight mode the relative weight error.
  sql: `WITH s AS (
  SELECT l.*, st.pipeline, st.name AS variant FROM layer_sensitivity l
  JOIN (SELECT key, any_value(pipeline) AS pipeline, any_value(name) AS name
        FROM latest_stages GROUP BY key) st ON st.key = l.key),
mode AS (
  SELECT mode FROM s GROUP BY mode
  ORDER BY CASE mode WHEN 'isolated' THEN 0 WHEN 'end_to_end' THEN 1 ELSE 2 END LIMIT 1)
SELECT s.pipeline, s.variant, s.layer, s.module, s.mode,
       avg(CASE WHEN s.mode = 'weight' THEN s.rel_error ELSE s.mse END) AS value,
       avg(s.mse) AS mse, avg(s.cosine) AS cosine, avg(s.rel_error) AS rel_error
FROM s JOIN mode USING (mode)
GROUP BY ALL
ORDER BY s.pipeline, s.variant, s.layer, s.module`,
  empty: "run a pipeline with an analyze stage (deno task sweep runs one per quantized model)",
};

// Each stage key's pipeline and name (latest run), for tables that carry only the key.
const STAGE_BY_KEY = `(SELECT key, any_value(pipeline) AS pipeline, any_value(name) AS name
      FROM latest_stages GROUP BY key)`;

export const TRAINING: SectionQuery = {
  id: "training",
  title: "Training loss",
  needs: ["train_steps", "latest_stages"],
  sql: `SELECT st.pipeline, st.name AS run, t.step, t.loss, t.lr, t.grad_norm, t.tokens_per_s
FROM train_steps t
JOIN ${STAGE_BY_KEY} st ON st.key = t.key
WHERE t.loss IS NOT NULL
ORDER BY st.pipeline, run, t.step`,
  empty: "run a fine-tuning pipeline: lab run pipelines/peft_compare.ts",
};

const SERVING_HINT = "run a serving benchmark: lab run pipelines/serving.ts";
const SERVING_SQL = (cols: string) =>
  `SELECT pipeline, stage, scheme, rate, rate_per_s, ${cols}
FROM serving_results
ORDER BY pipeline, scheme, rate_per_s NULLS LAST`;

export const SERVING_LATENCY: SectionQuery = {
  id: "serving_latency",
  title: "Serving latency vs request rate",
  needs: ["serving_results"],
  sql: SERVING_SQL("ttft_p50_ms, ttft_p99_ms, tpot_p50_ms, tpot_p99_ms, e2e_p99_ms, failed"),
  empty: SERVING_HINT,
};

export const SERVING_THROUGHPUT: SectionQuery = {
  id: "serving_throughput",
  title: "Serving throughput vs request rate",
  needs: ["serving_results"],
  sql: SERVING_SQL("requests_per_s, output_tokens_per_s, goodput_per_s, slo_attainment"),
  empty: SERVING_HINT,
};

export const WARNINGS: SectionQuery = {
  id: "warnings",
  title: "Warnings",
  needs: ["warnings", "latest_stages"],
  sql: `SELECT st.pipeline, st.name AS stage, w.severity, w.kind, w.message, w.metric, w.value
FROM warnings w
JOIN ${STAGE_BY_KEY} st ON st.key = w.key
ORDER BY CASE w.severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
         st.pipeline, st.name`,
  empty: "no warnings recorded (analyze stages write them when metrics disagree)",
};

export const RUNS: SectionQuery = {
  id: "runs",
  title: "Runs",
  needs: ["runs"],
  sql: `SELECT run_id, pipeline, status, started_at, finished_at, n_stages, n_ran, n_cached,
       n_failed, n_skipped
FROM runs ORDER BY started_at DESC LIMIT 20`,
  empty: "run a pipeline: lab run <pipeline.ts>",
};

/** The sections of the report, in reading order. */
export const SECTIONS: SectionQuery[] = [
  TRADEOFF,
  MEMORY_QUALITY,
  SPEED_QUALITY,
  PREFILL_DECODE,
  SENSITIVITY,
  TRAINING,
  SERVING_LATENCY,
  SERVING_THROUGHPUT,
  WARNINGS,
];

/** Advisor results, when an analyze stage with the advisor wrote them. */
export const ADVISOR_METRICS_SQL = `SELECT st.pipeline, st.name AS stage, m.name, m.value, m.unit
FROM metrics m
JOIN ${STAGE_BY_KEY} st ON st.key = m.key
WHERE m.name LIKE 'advisor_%'
ORDER BY st.pipeline, st.name, m.name`;
