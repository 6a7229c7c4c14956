// The engine's errors: problems found while building or planning a pipeline, and how any thrown
// value is described.
import { LabError } from "../errors.ts";

export { LabError };

/** Problems found while building or planning a pipeline; nothing has run. */
export class PipelineError extends LabError {
  /** Every problem found, each naming the pipeline file and stage. */
  readonly problems: string[];
  /** An error listing `problems`, one a line. */
  constructor(problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]
        : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "PipelineError";
    this.problems = problems;
  }
}

/** Message and stack of any thrown value, for meta.json and the stages table. */
export function describeError(e: unknown): { message: string; stack?: string } {
  // A user's mistake is told by its message; a stack would only bury it.
  if (e instanceof LabError) return { message: e.message };
  if (e instanceof Error) return { message: e.message || e.name, stack: e.stack };
  return { message: String(e) };
}
