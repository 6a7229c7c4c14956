// Runs a Python baseline with Debian's python3-torch, when present.
import { existsSync } from "node:fs";

/** The interpreter that has Debian's python3-torch, or null. */
export async function pythonWithTorch(): Promise<string | null> {
  const py = "/usr/bin/python3";
  if (!existsSync(py)) return null;
  const out = await new Deno.Command(py, { args: ["-c", "import torch"], stderr: "null" })
    .output();
  return out.success ? py : null;
}

/** Runs `code` and parses the JSON it prints on its last line. */
export async function runPython<T>(py: string, code: string, args: string[] = []): Promise<T> {
  const out = await new Deno.Command(py, { args: ["-c", code, ...args], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`python baseline failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}
