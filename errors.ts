/**
 * The one base class of errors a user causes and can fix (a bad flag, a missing file, a
 * checkpoint whose files disagree). It lives at the root, importing nothing, so that every
 * layer (engine, stages, models) can throw it and the CLI and the runner print any of them the
 * same way: one plain message line, no stack, exit code 2.
 */
export class LabError extends Error {
  /** An error with `message`, shown without a stack trace. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LabError";
  }
}
