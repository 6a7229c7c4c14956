// Lifetime tracking for native handles: tidy scopes, a live counter, and a
// FinalizationRegistry that only catches what user code forgot.

/** Something holding a native handle. */
export interface Owned {
  /** Frees the native handle; safe to call twice. */
  dispose(): void;
  /** True once the handle was freed. */
  readonly isDisposed: boolean;
}

const scopes: Owned[][] = [];
let live = 0;

/** Called when a handle is created: counts it and files it in the open scope. */
export function track(t: Owned): void {
  live++;
  const top = scopes[scopes.length - 1];
  if (top) top.push(t);
}

/** Called when a handle is freed. */
export function untrack(): void {
  live--;
}

/** Number of tensors alive now. */
export function liveTensors(): number {
  return live;
}

/** Removes `t` from the innermost scope, so the scope's end does not free it. */
export function keep<T extends Owned>(t: T): T {
  for (let i = scopes.length - 1; i >= 0; i--) {
    const idx = scopes[i].lastIndexOf(t);
    if (idx >= 0) {
      scopes[i].splice(idx, 1);
      break;
    }
  }
  return t;
}

function collect(value: unknown, out: Set<Owned>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if ("dispose" in value && "isDisposed" in value) {
    out.add(value as Owned);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

function close(scope: Owned[], result: unknown): void {
  const kept = new Set<Owned>();
  collect(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) {
      if (parent) parent.push(t);
    } else if (!t.isDisposed) {
      t.dispose();
    }
  }
}

/**
 * Runs `fn` and frees every tensor created inside it except those in its
 * result (a tensor, or arrays / plain objects / Maps holding tensors).
 * Async functions work too, as long as scopes of concurrent tasks do not
 * interleave (the scope is open until the promise settles).
 */
export function tidy<R>(fn: () => R): R {
  const scope: Owned[] = [];
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    close(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        scopes.splice(scopes.lastIndexOf(scope), 1);
        close(scope, v);
        return v;
      },
      (e) => {
        scopes.splice(scopes.lastIndexOf(scope), 1);
        close(scope, undefined);
        throw e;
      },
    ) as R;
  }
  scopes.pop();
  close(scope, result);
  return result;
}
