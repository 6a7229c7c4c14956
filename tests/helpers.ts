// Shared test helpers.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Hugging Face transformers' reference fixtures, beside the repository in ../shared (CI has them). */
export const HF_FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
/** Whether HF_FIXTURES is there; tests that read it are skipped, saying so, when it is not. */
export const haveHfFixtures = existsSync(HF_FIXTURES);

/** A fixture test's name, which says why it is skipped when the fixtures are absent. */
export function fixtureTestName(name: string): string {
  return haveHfFixtures
    ? name
    : `${name} (skipped: needs the transformers fixtures at ${HF_FIXTURES})`;
}

/** Asserts every |a[i] - b[i]| <= tol, reporting the worst index. */
export function assertClose(
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
  tol = 1e-6,
  what = "values",
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(Number(actual[i]) - Number(expected[i]));
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: max abs diff ${worst} at ${at} (got ${actual[at]}, want ${expected[at]}) > ${tol}`,
  );
}

/** Flattens nested arrays. */
export function flat(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flat) : [Number(x)];
}
