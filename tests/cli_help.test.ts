// `lab … --help` marks required options and shows numeric defaults as numbers.
import assert from "node:assert/strict";

async function help(...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/lab.ts", ...args, "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test("help marks required options and prints numeric defaults unquoted", async () => {
  const text = (await help("generate")).replace(/\s+/g, " ");
  assert.match(text, /--prompt <text> the prompt \(required\)/);
  assert.match(text, /--max-new-tokens <n> tokens to generate at most \(default: 64\)/);
  assert.match(text, /--dtype <dtype> float32, bfloat16 or float16 \(default: "float32"\)/);
  assert.doesNotMatch(text, /--top-k <k>[^-]*required/, "optional options say nothing");
});
