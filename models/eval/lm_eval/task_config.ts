// Reads an lm-evaluation-harness task YAML (the common subset) into a checked TaskConfig.
import { dirname, isAbsolute, resolve } from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { LabError } from "../../../errors.ts";

/** The request kinds lm-eval knows, all of which the lab runs. */
export const OUTPUT_TYPES = [
  "multiple_choice",
  "loglikelihood",
  "loglikelihood_rolling",
  "generate_until",
] as const;

/** Metrics the lab computes the way lm-eval does. */
export const METRICS = [
  "acc",
  "acc_norm",
  "exact_match",
  "perplexity",
  "word_perplexity",
  "byte_perplexity",
  "bits_per_byte",
] as const;

/** A metric name. */
export type MetricName = (typeof METRICS)[number];

const template = z.union([z.string(), z.number().int()]);
const dataFiles = z.union([
  z.string(),
  z.array(z.string()),
  z.record(z.string(), z.union([z.string(), z.array(z.string())])),
]);

const metricEntry = z.object({
  metric: z.enum(METRICS),
  aggregation: z.string().optional(),
  higher_is_better: z.boolean().optional(),
  ignore_case: z.boolean().optional(),
  ignore_punctuation: z.boolean().optional(),
  regexes_to_ignore: z.array(z.string()).optional(),
}).strict();

/** The task YAML keys the lab reads; any other key is refused by name. */
export const taskSchema = z.object({
  task: z.string().min(1),
  task_alias: z.string().optional(),
  tag: z.union([z.string(), z.array(z.string())]).optional(),
  dataset_path: z.string(),
  dataset_name: z.string().nullable().optional(),
  dataset_kwargs: z.object({ data_files: dataFiles }).strict().optional(),
  training_split: z.string().nullable().optional(),
  validation_split: z.string().nullable().optional(),
  test_split: z.string().nullable().optional(),
  fewshot_split: z.string().nullable().optional(),
  description: z.string().default(""),
  doc_to_text: template.optional(),
  doc_to_choice: z.union([z.string(), z.array(z.string())]).optional(),
  doc_to_target: template.optional(),
  target_delimiter: z.string().default(" "),
  fewshot_delimiter: z.string().default("\n\n"),
  num_fewshot: z.number().int().min(0).default(0),
  fewshot_config: z.object({ sampler: z.enum(["default", "first_n"]) }).strict().optional(),
  output_type: z.enum(OUTPUT_TYPES),
  metric_list: z.array(metricEntry).min(1).optional(),
  generation_kwargs: z.object({
    until: z.union([z.string(), z.array(z.string())]).optional(),
    max_gen_toks: z.number().int().positive().optional(),
    do_sample: z.literal(false).optional(),
    temperature: z.literal(0).optional(),
  }).strict().optional(),
  repeats: z.literal(1).optional(),
  should_decontaminate: z.literal(false).optional(),
  metadata: z.object({ version: z.number().optional() }).passthrough().optional(),
}).strict();

/** A task as its YAML says, with lm-eval's defaults filled in. */
export type TaskYaml = z.output<typeof taskSchema>;

/** A checked task: its YAML, where it lives, and its local data files per split. */
export interface TaskConfig extends TaskYaml {
  /** The YAML file it came from (absolute). */
  file: string;
  /** Absolute data files per split. */
  splits: Record<string, string[]>;
  /** The split evaluated: test_split, else validation_split. */
  evalSplit: string;
  /** Metrics to compute, with their options. */
  metrics: z.output<typeof metricEntry>[];
  /** Strings that end a generation (generate_until). */
  until: string[];
}

const DEFAULT_METRICS: Record<(typeof OUTPUT_TYPES)[number], MetricName[]> = {
  multiple_choice: ["acc", "acc_norm"],
  loglikelihood: ["perplexity", "acc"],
  loglikelihood_rolling: ["word_perplexity", "byte_perplexity", "bits_per_byte"],
  generate_until: ["exact_match"],
};

const ALLOWED: Record<(typeof OUTPUT_TYPES)[number], MetricName[]> = {
  multiple_choice: ["acc", "acc_norm"],
  loglikelihood: ["perplexity", "acc"],
  loglikelihood_rolling: ["word_perplexity", "byte_perplexity", "bits_per_byte"],
  generate_until: ["exact_match"],
};

/** lm-eval's `!function module.name` tag: Python code, recognised so it can be refused by name. */
class PythonFunction {
  constructor(readonly name: string) {}
}

const FUNCTION_TAG = {
  tag: "!function",
  resolve: (s: string) => new PythonFunction(s),
};

/** Turns a zod issue into "key `x.y`: message" naming what a user writes in YAML. */
function issueText(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    const where = issue.path.length ? ` under ${issue.path.join(".")}` : "";
    return `unsupported key${issue.keys.length > 1 ? "s" : ""} ${
      issue.keys.map((k) => `'${k}'`).join(", ")
    }${where}: the lab reads lm-eval's common subset (see docs/lm_eval.md); remove ${
      issue.keys.length > 1 ? "them" : "it"
    }`;
  }
  return `key '${issue.path.join(".") || "(top)"}': ${issue.message}`;
}

/** Reads and checks one task YAML file. */
export function readTaskConfig(path: string): TaskConfig {
  const file = resolve(path);
  let raw: unknown;
  try {
    raw = parse(Deno.readTextFileSync(file), { customTags: [FUNCTION_TAG] });
  } catch (e) {
    throw new LabError(`lm-eval task ${file}: cannot read it: ${(e as Error).message}`);
  }
  const fn = Object.entries((raw ?? {}) as Record<string, unknown>).find(([, v]) =>
    v instanceof PythonFunction
  );
  if (fn) {
    throw new LabError(
      `lm-eval task ${file}: key '${fn[0]}': !function ${
        (fn[1] as PythonFunction).name
      } names Python code, which the lab cannot run; write it as a Jinja template or a field name`,
    );
  }
  const r = taskSchema.safeParse(raw);
  if (!r.success) throw new LabError(`lm-eval task ${file}: ${issueText(r.error.issues[0])}`);
  const y = r.data;
  const fail = (msg: string): never => {
    throw new LabError(`lm-eval task ${file}: ${msg}`);
  };
  const splits = dataSplits(y, file, fail);
  const evalSplit = y.test_split ?? y.validation_split ??
    fail("key 'test_split': set test_split (or validation_split) to the split to evaluate");
  for (
    const key of ["test_split", "validation_split", "training_split", "fewshot_split"] as const
  ) {
    const s = y[key];
    if (s && !splits[s]) {
      fail(
        `key '${key}': split '${s}' has no file in dataset_kwargs.data_files (${
          Object.keys(splits).join(", ")
        })`,
      );
    }
  }
  if (y.output_type === "multiple_choice" && y.doc_to_choice === undefined) {
    fail("key 'doc_to_choice': multiple_choice tasks need doc_to_choice");
  }
  const metrics = y.metric_list ?? DEFAULT_METRICS[y.output_type].map((metric) => ({ metric }));
  for (const m of metrics) {
    if (!ALLOWED[y.output_type].includes(m.metric)) {
      fail(
        `key 'metric_list': ${m.metric} does not apply to output_type ${y.output_type} (use ${
          ALLOWED[y.output_type].join(", ")
        })`,
      );
    }
  }
  const u = y.generation_kwargs?.until;
  const until = u === undefined ? [y.fewshot_delimiter] : typeof u === "string" ? [u] : u;
  return { ...y, file, splits, evalSplit, metrics, until };
}

/** The local files of each split; a hub dataset is refused. */
function dataSplits(
  y: TaskYaml,
  file: string,
  fail: (msg: string) => never,
): Record<string, string[]> {
  if (!["json", "csv", "parquet"].includes(y.dataset_path)) {
    fail(
      `key 'dataset_path': '${y.dataset_path}' names a dataset hub download, which the lab never ` +
        "does. Save the data locally and write dataset_path: json (or csv, parquet) with " +
        "dataset_kwargs: {data_files: {test: path/to/test.jsonl}}",
    );
  }
  const df = y.dataset_kwargs?.data_files ??
    fail(`key 'dataset_kwargs.data_files': dataset_path ${y.dataset_path} needs local data files`);
  const perSplit: Record<string, string | string[]> = typeof df === "string" || Array.isArray(df)
    ? { train: df }
    : df;
  const base = dirname(file);
  const out: Record<string, string[]> = {};
  for (const [split, files] of Object.entries(perSplit)) {
    out[split] = (typeof files === "string" ? [files] : files).map((f) =>
      isAbsolute(f) ? f : resolve(base, f)
    );
  }
  return out;
}
