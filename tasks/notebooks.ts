/**
 * `deno task notebooks`: checks that the notebooks under notebooks/ are stored without outputs,
 * then executes each headless on Deno's Jupyter kernel (quick mode: seconds-long stand-in
 * pipelines), failing on any cell error.
 *
 *   deno task notebooks            check, then execute (LAB_NOTEBOOK_QUICK=1)
 *   deno task notebooks --full     execute the real pipelines into results/ (minutes)
 *   deno task notebooks --check    only check that outputs are stripped and the cells type-check
 *   deno task notebooks --strip    remove outputs and execution counts in place
 *   deno task notebooks --out DIR  keep the executed copies (with outputs) in DIR
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LabError } from "../engine/errors.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIR = join(ROOT, "notebooks");
const PYTHON = "/usr/bin/python3";
const INSTALL = "apt-get install -y --no-install-recommends python3-nbclient jupyter-nbconvert " +
  "jupyter-client, then deno jupyter --install";

interface Cell {
  cell_type: string;
  outputs?: unknown[];
  execution_count?: number | null;
}

/** The notebooks, sorted. */
export function notebookFiles(dir = DIR): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".ipynb"))
    .map((e) => join(dir, e.name)).sort();
}

/** Problems of a notebook stored with outputs: "file: cell N has outputs", one per cell. */
export function unstripped(file: string): string[] {
  const nb = JSON.parse(Deno.readTextFileSync(file)) as { cells: Cell[] };
  return nb.cells.flatMap((c, i) =>
    c.cell_type === "code" && ((c.outputs?.length ?? 0) > 0 || c.execution_count != null)
      ? [`${file}: cell ${i} has outputs or an execution count`]
      : []
  );
}

/** Removes outputs and execution counts in place; returns whether the file changed. */
export function strip(file: string): boolean {
  const text = Deno.readTextFileSync(file);
  const nb = JSON.parse(text) as { cells: Cell[] };
  for (const c of nb.cells) {
    if (c.cell_type !== "code") continue;
    c.outputs = [];
    c.execution_count = null;
  }
  const out = JSON.stringify(nb, null, 1) + "\n";
  if (out !== text) Deno.writeTextFileSync(file, out);
  return out !== text;
}

/**
 * Type-checks each notebook's code cells, joined in order into one module beside the notebook
 * (the kernel runs cells in one shared scope, so a module is a fair stand-in). Returns the exit
 * code of `deno check`.
 */
export async function typecheck(files: string[]): Promise<number> {
  const modules = files.map((f) => {
    const nb = JSON.parse(Deno.readTextFileSync(f)) as { cells: (Cell & { source: string[] })[] };
    const code = nb.cells.map((c, i) =>
      c.cell_type === "code" ? `// ${f.split("/").pop()}, cell ${i}\n${c.source.join("")};\n` : ""
    ).join("");
    const mod = f.replace(/([^/]+)\.ipynb$/, ".$1.check.ts");
    Deno.writeTextFileSync(mod, code);
    return mod;
  });
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", ...modules],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    return r.code;
  } finally {
    for (const m of modules) Deno.removeSync(m);
  }
}

async function execute(files: string[], full: boolean, out?: string): Promise<number> {
  const probe = await new Deno.Command(PYTHON, {
    args: ["-c", "import nbclient, nbformat, jupyter_client"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => ({ success: false }));
  if (!probe.success) {
    throw new LabError(`executing notebooks needs Jupyter's client in ${PYTHON}: ${INSTALL}`);
  }
  const env: Record<string, string> = full ? {} : { LAB_NOTEBOOK_QUICK: "1" };
  const args = [join(ROOT, "tasks/notebooks/execute.py"), ...(out ? ["--out", out] : []), ...files];
  const r = await new Deno.Command(PYTHON, {
    args,
    env,
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  return r.code;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      check: { type: "boolean" },
      strip: { type: "boolean" },
      full: { type: "boolean" },
      out: { type: "string" },
    },
  });
  const files = notebookFiles();
  if (values.strip) {
    for (const f of files) if (strip(f)) console.log(`stripped ${f}`);
    return 0;
  }
  const problems = files.flatMap(unstripped);
  if (problems.length) {
    console.error(problems.join("\n"));
    console.error("notebooks are kept without outputs: run deno task notebooks --strip");
    return 1;
  }
  if (values.check) return await typecheck(files);
  return await execute(files, values.full ?? false, values.out);
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (!(e instanceof LabError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(2);
  }
}
