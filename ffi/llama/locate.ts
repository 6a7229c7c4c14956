// Finds the prebuilt libllama that npm's @node-llama-cpp package ships, in Deno's npm cache.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { LabError } from "../../errors.ts";

/** The npm package (pinned in deno.json's imports) that carries libllama for this platform. */
export const LLAMA_CPP_PACKAGE = "@node-llama-cpp/linux-x64";

/** The pinned version of LLAMA_CPP_PACKAGE: its libllama's C API is what structs.ts lays out. */
export const LLAMA_CPP_VERSION = "3.22.1";

/** A libllama that was found: its folder and file names. */
export interface LlamaCppLibrary {
  dir: string;
  libllama: string;
  libggml: string;
}

/** Raised when libllama is missing or cannot run here; the message says how to get it. */
export class LlamaCppUnavailable extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "LlamaCppUnavailable";
  }
}

function denoDir(): string {
  const env = Deno.env.get("DENO_DIR");
  if (env) return env;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "deno");
  return join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
}

/** The folder npm's package unpacks to in Deno's global npm cache. */
export function packageDir(): string {
  return join(denoDir(), "npm", "registry.npmjs.org", LLAMA_CPP_PACKAGE, LLAMA_CPP_VERSION);
}

function findLib(dir: string, prefix: string): string | null {
  try {
    return readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith(".so")) ?? null;
  } catch {
    return null;
  }
}

/**
 * The libllama to open: `$LLAMA_CPP_LIB_DIR` first (a folder holding libllama*.so and its
 * libggml*.so), else the pinned npm package. Throws LlamaCppUnavailable naming the fix.
 */
export function locateLlamaCpp(): LlamaCppLibrary {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new LlamaCppUnavailable(
      `llama.cpp stages need linux x86_64 (this is ${Deno.build.os} ${Deno.build.arch}): ` +
        `the lab pins ${LLAMA_CPP_PACKAGE}, the only build it opens`,
    );
  }
  const env = Deno.env.get("LLAMA_CPP_LIB_DIR");
  const dir = env ?? join(packageDir(), "bins", "linux-x64");
  const libllama = findLib(dir, "libllama.");
  const libggml = findLib(dir, "libggml.");
  if (!libllama || !libggml || !existsSync(join(dir, libllama))) {
    throw new LlamaCppUnavailable(
      env
        ? `LLAMA_CPP_LIB_DIR=${env} holds no libllama.*.so and libggml.*.so`
        : `libllama is not installed (looked in ${dir}). Run: deno task setup ` +
          `(it fetches npm:${LLAMA_CPP_PACKAGE}@${LLAMA_CPP_VERSION})`,
    );
  }
  return { dir, libllama: join(dir, libllama), libggml: join(dir, libggml) };
}
