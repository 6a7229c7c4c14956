// Showing a run as it goes: the Reporter interface, a live terminal display and plain lines for
// logs.
import type { Plan, PlanNode } from "./plan.ts";
import type { NodeOutcome, RunSummary } from "./run_types.ts";

/** Receives what a run does, to show it. */
export interface Reporter {
  /** A run starts: its plan, id, how many stages will run, on which executor with how many jobs. */
  start(info: { plan: Plan; runId: string; toRun: number; executor: string; jobs: number }): void;
  /** A stage starts. */
  nodeStart(node: PlanNode): void;
  /** A running stage reports progress. */
  nodeProgress(
    node: PlanNode,
    done: number,
    total: number | undefined,
    message: string | undefined,
  ): void;
  /** A running stage logs a line. */
  nodeLog(node: PlanNode, message: string): void;
  /** A stage ends (ran, cached, failed, skipped or interrupted). */
  nodeEnd(node: PlanNode, outcome: NodeOutcome): void;
  /** The run ends. */
  end(summary: RunSummary): void;
  /** A message about the run itself (e.g. waiting for the results lock). */
  message?(text: string): void;
}

type Write = (text: string) => void;
const enc = new TextEncoder();
const stdoutWrite: Write = (t) => {
  const data = enc.encode(t);
  let off = 0;
  while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));
};

/** Picks the live display on a terminal, plain lines otherwise. */
export function defaultReporter(opts: { quiet?: boolean } = {}): Reporter {
  if (opts.quiet) return new PlainReporter(stdoutWrite, { quiet: true });
  return Deno.stdout.isTerminal() && !Deno.env.get("CI")
    ? new TtyReporter(stdoutWrite)
    : new PlainReporter(stdoutWrite);
}

/** Formats seconds as 1.2s, 3m04s or 1h02m. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 10) return `${s.toFixed(s < 1 ? 2 : 1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function firstLine(s: string | undefined): string {
  return (s ?? "").split("\n")[0];
}

abstract class BaseReporter implements Reporter {
  protected toRun = 0;
  protected finished = 0;
  protected cached = 0;
  protected t0 = performance.now();
  protected runWall = 0;
  protected jobs = 1;
  protected running = new Map<
    PlanNode,
    { t0: number; done?: number; total?: number; message?: string }
  >();
  constructor(protected write: Write) {}

  start(info: { plan: Plan; runId: string; toRun: number; executor: string; jobs: number }): void {
    this.toRun = info.toRun;
    this.jobs = info.jobs;
    this.t0 = performance.now();
    const p = info.plan;
    const cached = p.nodes.filter((n) => n.action === "cached").length;
    const excl = p.nodes.filter((n) => n.action === "excluded").length;
    this.line(
      `run ${p.pipeline} (${p.displayFile}): ${
        p.nodes.length - excl
      } stages, ${cached} cached, ${info.toRun} to run` +
        (excl ? `, ${excl} excluded` : "") +
        (info.toRun ? ` [${info.executor}, ${info.jobs} jobs]` : ""),
    );
  }
  nodeStart(node: PlanNode): void {
    this.running.set(node, { t0: performance.now() });
  }
  nodeProgress(
    node: PlanNode,
    done: number,
    total: number | undefined,
    message: string | undefined,
  ): void {
    const r = this.running.get(node);
    if (r) Object.assign(r, { done, total, message });
  }
  nodeLog(node: PlanNode, message: string): void {
    this.line(`  ${node.name} | ${message}`);
  }
  nodeEnd(node: PlanNode, o: NodeOutcome): void {
    this.running.delete(node);
    if (o.status === "cached") {
      this.cached++;
      return;
    }
    this.finished++;
    this.runWall += o.wallS;
    const tag = `[${this.finished}/${this.toRun}]`;
    if (o.status === "ok") this.line(`${tag} ok      ${node.name} (${formatDuration(o.wallS)})`);
    else if (o.status === "failed") {
      this.line(`${tag} FAILED  ${node.name}: ${firstLine(o.error?.message)}`);
    } else if (o.status === "skipped") {
      this.line(
        `${tag} skipped ${node.name} (${firstLine(o.error?.message).replace(/^skipped: /, "")})`,
      );
    } else if (o.status === "interrupted") this.line(`${tag} interrupted ${node.name}`);
  }
  end(s: RunSummary): void {
    const c = s.counts;
    const parts = [`${c.ok} ran`, `${c.cached} cached`];
    if (c.failed) parts.push(`${c.failed} failed`);
    if (c.skipped) parts.push(`${c.skipped} skipped`);
    if (c.interrupted) parts.push(`${c.interrupted} interrupted`);
    if (c.excluded) parts.push(`${c.excluded} excluded`);
    const head = s.status === "interrupted"
      ? "interrupted"
      : s.status === "failed"
      ? "finished with failures"
      : "done";
    this.line(`${head} in ${formatDuration(s.wallS)}: ${parts.join(", ")} (run ${s.runId})`);
    if (s.failures.length) {
      this.line("failed stages:");
      for (const f of s.failures) {
        this.line(
          `  ${f.node.name} (${f.node.kind}, key ${f.node.key.slice(0, 12)}): ${
            firstLine(f.error?.message)
          }`,
        );
      }
      this.line(
        `details: results/failed/<key>.json, or lab query "select name, error from failures"`,
      );
    }
  }
  message(text: string): void {
    this.line(text);
  }
  protected eta(): number {
    const left = this.toRun - this.finished;
    if (!this.finished || !left) return NaN;
    return (this.runWall / this.finished) * left / Math.max(1, Math.min(this.jobs, left));
  }
  protected line(text: string): void {
    this.write(text + "\n");
  }
}

/** Plain lines for logs and CI; per-stage progress at most every `progressEveryS`. */
export class PlainReporter extends BaseReporter {
  private lastProgress = new Map<PlanNode, number>();
  /** Plain lines through `write`; `quiet` shows only failures and the end. */
  constructor(write: Write, private opts: { quiet?: boolean; progressEveryS?: number } = {}) {
    super(write);
  }
  /** Prints a stage's progress at most every `progressEveryS` seconds. */
  override nodeProgress(
    node: PlanNode,
    done: number,
    total: number | undefined,
    message: string | undefined,
  ): void {
    super.nodeProgress(node, done, total, message);
    const now = performance.now();
    const last = this.lastProgress.get(node) ?? this.running.get(node)?.t0 ?? now;
    if (now - last < (this.opts.progressEveryS ?? 10) * 1000) return;
    this.lastProgress.set(node, now);
    this.line(`  ${node.name}: ${done}${total ? `/${total}` : ""}${message ? ` ${message}` : ""}`);
  }
  /** Writes one line. */
  protected override line(text: string): void {
    if (
      this.opts.quiet &&
      !/^(done|finished|interrupted|failed stages| {2}\S.*: |details)/.test(text) &&
      !text.includes("FAILED")
    ) return;
    super.line(text);
  }
}

/** A live block at the bottom of the terminal: running stages with progress, done/total, ETA. */
export class TtyReporter extends BaseReporter {
  private drawn = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  /** Starts the live display. */
  override start(info: Parameters<Reporter["start"]>[0]): void {
    super.start(info);
    if (info.toRun) {
      const timer = setInterval(() => this.draw(), 200);
      Deno.unrefTimer(timer);
      this.timer = timer;
    }
  }
  /** Ends the live display and prints the summary. */
  override end(s: RunSummary): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
    super.end(s);
  }
  /** Writes one line above the live display. */
  protected override line(text: string): void {
    this.clear();
    this.write(text + "\n");
    this.draw();
  }
  private clear(): void {
    if (this.drawn) this.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }
  private draw(): void {
    if (this.timer === undefined) return;
    this.clear();
    let width = 100;
    try {
      width = Deno.consoleSize().columns;
    } catch { /* not a console */ }
    const el = (performance.now() - this.t0) / 1000;
    const eta = this.eta();
    const rows = [
      `\x1b[1m${this.finished}/${this.toRun}\x1b[0m done · ${this.running.size} running · elapsed ${
        formatDuration(el)
      }` +
      (Number.isFinite(eta) ? ` · ETA ${formatDuration(eta)}` : ""),
    ];
    const now = performance.now();
    let shown = 0;
    for (const [node, r] of this.running) {
      if (shown++ >= 12) {
        rows.push(`  ... ${this.running.size - 12} more`);
        break;
      }
      let prog = "";
      if (r.done !== undefined) {
        prog = r.total ? ` ${bar(r.done / r.total, 16)} ${r.done}/${r.total}` : ` ${r.done}`;
        if (r.message) prog += ` ${r.message}`;
      }
      rows.push(`  ▸ ${node.name}${prog} (${formatDuration((now - r.t0) / 1000)})`);
    }
    const text = rows.map((r) => fitWidth(r, width - 1)).join("\n") + "\n";
    this.write(text);
    this.drawn = rows.length;
  }
}

/** Cuts a line to `width` visible characters (ANSI escapes do not count). */
function fitWidth(line: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i);
      out += line.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible === width - 1 && i < line.length - 1) return out + "…\x1b[0m";
    out += line[i];
    visible++;
  }
  return out;
}

function bar(frac: number, width: number): string {
  const f = Math.max(0, Math.min(1, frac));
  const full = Math.round(f * width);
  return "█".repeat(full) + "░".repeat(width - full);
}

/** Reports nothing (tests, library use). */
export const silentReporter: Reporter = {
  start() {},
  nodeStart() {},
  nodeProgress() {},
  nodeLog() {},
  nodeEnd() {},
  end() {},
};
