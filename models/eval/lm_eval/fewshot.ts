// Few-shot contexts as lm-eval builds them: seeded draws from the few-shot split, joined by the delimiters.
import { LabError } from "../../../errors.ts";
import type { Doc } from "./documents.ts";
import { PythonRandom } from "./python_random.ts";
import type { TaskConfig } from "./task_config.ts";
import { type DocRef, docToChoice, docToTarget, docToText } from "./templates.ts";

/** lm-eval's default few-shot seed (`--fewshot_random_seed`). */
export const DEFAULT_FEWSHOT_SEED = 1234;

/** The split few-shot examples come from: fewshot_split, else training, else validation, else the evaluated one. */
export function fewshotSplit(task: TaskConfig): string {
  return task.fewshot_split ?? task.training_split ?? task.validation_split ?? task.evalSplit;
}

/** Draws few-shot examples for each evaluated document in turn, from one seeded generator per task. */
export class FewshotSampler {
  #rnd: PythonRandom;
  constructor(
    readonly task: TaskConfig,
    readonly docs: readonly Doc[],
    readonly split: string,
    seed = DEFAULT_FEWSHOT_SEED,
  ) {
    this.#rnd = new PythonRandom(seed);
    const need = task.num_fewshot + (split === task.evalSplit ? 1 : 0);
    if (task.num_fewshot > 0 && docs.length < need) {
      throw new LabError(
        `lm-eval task ${task.file}: key 'num_fewshot': ${task.num_fewshot} examples need at ` +
          `least ${need} documents in split ${split}, which has ${docs.length}`,
      );
    }
  }

  /** Indices of the examples shown before evaluated document `index` (never itself). */
  pick(index: number): number[] {
    const n = this.task.num_fewshot;
    if (n === 0) return [];
    const all = this.docs.map((_, i) => i);
    if (this.task.fewshot_config?.sampler === "first_n") return all.slice(0, n);
    const same = this.split === this.task.evalSplit;
    const drawn = this.#rnd.sample(all, same ? n + 1 : n);
    return (same ? drawn.filter((i) => i !== index) : drawn).slice(0, n);
  }

  /** description + examples (each text, target delimiter, target; joined by the few-shot delimiter). */
  context(index: number): string {
    const t = this.task;
    const shots = this.pick(index).map((i) => {
      const ref: DocRef = { task: t, index: i, split: this.split };
      const doc = this.docs[i];
      const text = docToText(doc, ref);
      const target = docToTarget(doc, ref);
      const choices = t.doc_to_choice !== undefined ? docToChoice(doc, ref) : null;
      const textStr = typeof text === "number" && choices ? choices[text] : String(text);
      const targetStr = Array.isArray(target)
        ? String(target[0])
        : typeof target === "number" && choices
        ? choices[target]
        : String(target);
      return textStr + t.target_delimiter + targetStr;
    });
    return t.description +
      (shots.length ? shots.join(t.fewshot_delimiter) + t.fewshot_delimiter : "");
  }
}
