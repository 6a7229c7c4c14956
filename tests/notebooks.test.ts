// The notebooks are stored without outputs, and the check catches and strips one that has them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { notebookFiles, strip, unstripped } from "../tasks/notebooks.ts";

Deno.test("the bundled notebooks exist and are stored without outputs", () => {
  const names = notebookFiles().map((f) => f.split("/").pop());
  for (const n of ["quickstart.ipynb", "layer_sensitivity.ipynb", "finetune.ipynb"]) {
    assert.ok(names.includes(n), `notebooks/${n} is missing`);
  }
  assert.deepEqual(notebookFiles().flatMap(unstripped), []);
});

Deno.test("a notebook with outputs fails the check, and --strip fixes it", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-nb-" });
  try {
    const file = join(dir, "n.ipynb");
    const cell = (outputs: unknown[], n: number | null) => ({
      cell_type: "code",
      id: `c${n}`,
      metadata: {},
      execution_count: n,
      outputs,
      source: ["1 + 1"],
    });
    const nb = {
      cells: [cell([], null), cell([{ output_type: "execute_result", data: {} }], 3)],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5,
    };
    Deno.writeTextFileSync(file, JSON.stringify(nb));
    assert.deepEqual(unstripped(file), [`${file}: cell 1 has outputs or an execution count`]);
    assert.equal(strip(file), true);
    assert.deepEqual(unstripped(file), []);
    assert.equal(strip(file), false);
    const after = JSON.parse(Deno.readTextFileSync(file));
    assert.deepEqual(after.cells[1].source, ["1 + 1"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
