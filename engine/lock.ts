// One lab process at a time per results folder: an flock on results/.lock.
import { join } from "node:path";
import { hostname } from "node:os";
import { LabError } from "./errors.ts";

/** A held lock on a results folder. */
export interface ResultsLock {
  release(): void;
}

/**
 * Takes the results folder's lock (an flock on results/.lock, released by the OS if the
 * process dies). If another lab process holds it: wait when `wait`, else a LabError naming
 * the holder.
 */
export async function lockResults(
  resultsDir: string,
  opts: { purpose: string; wait?: boolean; onWait?: (holder: string) => void },
): Promise<ResultsLock> {
  try {
    Deno.mkdirSync(resultsDir, { recursive: true });
  } catch (e) {
    throw new LabError(
      `cannot use ${resultsDir} as the results folder: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const path = join(resultsDir, ".lock");
  const file = Deno.openSync(path, { read: true, write: true, create: true });
  let warned = false;
  while (!file.tryLockSync(true)) {
    const holder = describeHolder(path);
    if (!opts.wait) {
      file.close();
      throw new LabError(
        `results folder ${resultsDir} is in use by another lab process (${holder}). ` +
          `Wait for it to finish, or pass --wait to start when it does.`,
      );
    }
    if (!warned) {
      opts.onWait?.(holder);
      warned = true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  file.truncateSync(0);
  const info = JSON.stringify({
    pid: Deno.pid,
    host: hostname(),
    purpose: opts.purpose,
    since: new Date().toISOString(),
  });
  file.writeSync(new TextEncoder().encode(info));
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        file.truncateSync(0);
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}

function describeHolder(path: string): string {
  try {
    const h = JSON.parse(Deno.readTextFileSync(path));
    return `pid ${h.pid} on ${h.host}: ${h.purpose}, since ${h.since}`;
  } catch {
    return "holder unknown";
  }
}
