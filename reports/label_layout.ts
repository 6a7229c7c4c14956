// Which points of a scatter chart get a text label: labels are laid out greedily in the
// chart's pixel space (front points first) and one that would overlap a placed label is left
// out; its point keeps its tooltip.

/** A point with its label text and data coordinates. */
export interface LabelledPoint {
  x: number;
  y: number;
  text: string;
}

/** The chart's drawing area and scales, as far as label placement needs them. */
export interface LabelFrame {
  width: number;
  height: number;
  xLog: boolean;
  /** Label offset to the right of its point, in pixels. */
  dx: number;
  fontSize: number;
}

/** The subset of `points` (kept in priority order) whose labels do not overlap. */
export function nonOverlappingLabels<T extends LabelledPoint>(points: T[], frame: LabelFrame): T[] {
  const fx = (v: number) => (frame.xLog ? Math.log(Math.max(v, 1e-300)) : v);
  const xs = points.map((p) => fx(p.x)), ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const px = (v: number) => (x1 > x0 ? ((fx(v) - x0) / (x1 - x0)) * frame.width : 0);
  const py = (v: number) => (y1 > y0 ? ((y1 - v) / (y1 - y0)) * frame.height : 0);
  // About 0.6 em per character of an 11 px sans-serif label.
  const charW = frame.fontSize * 0.6, half = frame.fontSize * 0.6;
  const placed: { l: number; r: number; t: number; b: number }[] = [];
  const out: T[] = [];
  for (const p of points) {
    const l = px(p.x) + frame.dx, t = py(p.y) - half;
    const box = { l, r: l + p.text.length * charW, t, b: t + 2 * half };
    if (placed.some((q) => box.l < q.r && q.l < box.r && box.t < q.b && q.t < box.b)) continue;
    placed.push(box);
    out.push(p);
  }
  return out;
}
