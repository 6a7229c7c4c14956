// Scatter labels never overlap: a point whose label would cover a placed one keeps only its
// tooltip, and front points are placed first.
import assert from "node:assert/strict";
import { nonOverlappingLabels } from "../reports/label_layout.ts";

const frame = { width: 500, height: 300, xLog: false, dx: 8, fontSize: 11 };

Deno.test("labels that would overlap are left out, the first (front) one kept", () => {
  const points = [
    { x: 1, y: 10, text: "nf4" },
    { x: 1.01, y: 10.01, text: "fp4" }, // on top of nf4
    { x: 9, y: 1, text: "int8" }, // far away
    { x: 5, y: 5.5, text: "int4-g128" },
  ];
  assert.deepEqual(nonOverlappingLabels(points, frame).map((p) => p.text), [
    "nf4",
    "int8",
    "int4-g128",
  ]);
  // A long label to the left reaches a point to its right on the same row.
  const row = [{ x: 0, y: 1, text: "a-very-long-label" }, { x: 1, y: 1, text: "b" }, {
    x: 100,
    y: 1,
    text: "c",
  }];
  assert.deepEqual(nonOverlappingLabels(row, frame).map((p) => p.text), ["a-very-long-label", "c"]);
});
