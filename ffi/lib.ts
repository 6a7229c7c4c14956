// Opens the shim library once, on first use, with a plain error when it is missing.
import { existsSync } from "node:fs";
import { SHIM_PATH } from "./build.ts";
import { SYMBOLS } from "./symbols.ts";

/** An error raised by libtorch or by the binding's own checks. */
export class TorchError extends Error {
  /** Creates the error with libtorch's or the check's message. */
  constructor(message: string) {
    super(message);
    this.name = "TorchError";
  }
}

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Lib | null = null;

/** Where the shim is loaded from: $LAB_TORCH_SHIM, else ffi/build/. */
export function shimPath(): string {
  return Deno.env.get("LAB_TORCH_SHIM") ?? SHIM_PATH;
}

/** Whether the shim is loaded already (describing it must not be what loads it). */
export function isLoaded(): boolean {
  return lib !== null;
}

/**
 * How idle OpenMP workers wait, unless OMP_WAIT_POLICY or GOMP_SPINCOUNT says otherwise: a
 * short spin, then sleep. libgomp's default spin (300,000 rounds, a millisecond or more) steals
 * the cores from anything else that runs (a second stage, the progress display: a 128-token
 * prefill went from 60 ms to seconds); not spinning at all (PASSIVE) makes every parallel
 * region of a decode step wait for a futex wake-up (measured on a 1B-shaped nf4 model: 8.3
 * tok/s passive, 9.1 with 10,000 rounds). Child processes (benchmark baselines) inherit it.
 */
export function setOpenMpWaiting(): void {
  const env = Deno.env;
  if (env.get("OMP_WAIT_POLICY") === undefined && env.get("GOMP_SPINCOUNT") === undefined) {
    env.set("GOMP_SPINCOUNT", "10000");
  }
}

/** The loaded shim's symbols. */
export function L(): Lib {
  if (lib) return lib;
  const path = shimPath();
  if (!existsSync(path)) {
    throw new TorchError(
      `the libtorch shim is not built (${path} is missing). Run: deno task setup`,
    );
  }
  setOpenMpWaiting();
  try {
    lib = Deno.dlopen(path, SYMBOLS).symbols;
  } catch (e) {
    throw new TorchError(
      `could not load the libtorch shim ${path}: ${(e as Error).message}. ` +
        "Is libtorch installed (sudo apt-get install -y libtorch-dev) or LIBTORCH set? " +
        "Then rebuild with: deno task setup --force",
    );
  }
  const cores = navigator.hardwareConcurrency || 1;
  const wanted = Number(Deno.env.get("LAB_THREADS") ?? cores);
  // Debian's libtorch starts with one thread; use the machine.
  lib.lt_set_num_threads(wanted > 0 ? wanted : cores);
  return lib;
}

/** The message libtorch left for the current thread. */
export function lastError(global = false): string {
  const p = global ? L().lt_last_error_global() : L().lt_last_error();
  return p ? Deno.UnsafePointerView.getCString(p) : "unknown error";
}

/** Throws a TorchError with the shim's last message when `ptr` is null. */
export function check(ptr: Deno.PointerValue, what: string): Deno.PointerObject {
  if (ptr === null) throw new TorchError(`${what}: ${lastError()}`);
  return ptr;
}

/** Throws a TorchError when a status code is negative. */
export function checkStatus(code: number, what: string): number {
  if (code < 0) throw new TorchError(`${what}: ${lastError()}`);
  return code;
}
