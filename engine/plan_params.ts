// The params phase of planning: each node's raw params checked against its stage's schema,
// defaults filled in; every unknown field and invalid value becomes a problem naming it.
import type { NodeSpec } from "./build.ts";
import { isHandle } from "./build.ts";
import { canonicalJson } from "./canonical.ts";
import { preview, suggest, unknownFields, valueAt } from "./params_check.ts";
import type { PlanNode, PlanProblems } from "./plan_types.ts";

/** Sets each node's `params` to its schema's parsed value, or records why it cannot. */
export function validateParams(order: PlanNode[], specs: NodeSpec[], problems: PlanProblems): void {
  for (const n of order) {
    const spec = specs[n.id];
    const raw = spec.rawParams === undefined ? {} : spec.rawParams;
    const label = problems.label(n);
    if (isHandle(raw)) {
      problems.list.push(
        `${label}: got a stage handle where params were expected (it takes inputs: ${
          n.stage.inputs.map((i) => i.name).join(", ") || "none"
        })`,
      );
      continue;
    }
    let unknown = 0;
    unknownFields(n.stage.schema, raw, "", (field, known) => {
      unknown++;
      problems.list.push(
        `${label}: unknown field "${field}"${suggest(field.split(".").pop()!, known)} ` +
          `(expected one of: ${known.join(", ")})`,
      );
    });
    const res = n.stage.schema.safeParse(raw);
    if (!res.success) {
      for (const issue of res.error.issues) {
        // Strict objects report unknown keys too; ours name the field and suggest one.
        if (issue.code === "unrecognized_keys" && unknown) continue;
        const path = issue.path.map(String).join(".");
        const got = valueAt(raw, issue.path as PropertyKey[]);
        problems.list.push(
          `${label}: ${path ? `field "${path}"` : "params"}: ${issue.message}${
            got.found ? `, got ${preview(got.value)}` : ""
          }`,
        );
      }
      continue;
    }
    n.params = res.data;
    try {
      canonicalJson(n.params);
    } catch (e) {
      problems.list.push(`${label}: params must be plain JSON values: ${(e as Error).message}`);
    }
  }
}
