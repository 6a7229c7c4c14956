// `deno task setup`'s llama.cpp step: fetches the pinned npm package into Deno's cache.
import { existsSync } from "node:fs";
import { LLAMA_CPP_PACKAGE, LLAMA_CPP_VERSION, locateLlamaCpp, packageDir } from "./locate.ts";

/**
 * Makes sure the pinned libllama is in Deno's npm cache (`deno cache npm:…`); returns a line
 * saying what it found, or why llama.cpp stages will refuse to run (never throws: the rest of
 * the lab works without it).
 */
export async function ensureLlamaCpp(): Promise<{ ok: boolean; message: string }> {
  if (Deno.env.get("LLAMA_CPP_LIB_DIR")) return found();
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return found();
  if (!existsSync(packageDir())) {
    const spec = `npm:${LLAMA_CPP_PACKAGE}@${LLAMA_CPP_VERSION}`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["cache", "--node-modules-dir=none", "--no-lock", spec],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join(" ");
      return { ok: false, message: `could not fetch ${spec} (llama.cpp stages will fail): ${why}` };
    }
  }
  return found();
}

function found(): { ok: boolean; message: string } {
  try {
    return { ok: true, message: `llama.cpp: ${locateLlamaCpp().libllama}` };
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  }
}
