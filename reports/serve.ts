/**
 * `lab serve`: a local dashboard over the live results. The database is opened read-only for
 * each read and closed right after (reads are serialized), so the runner, the only writer,
 * can flush between them; runs and their progress come from results/runs/*.json, which the
 * runner rewrites at every flush.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LabError } from "../engine/errors.ts";
import { databasePath, LabDatabase, readManifests, type RunManifest } from "../engine/store.ts";
import { renderCharts } from "./charts.ts";
import { readFrom } from "./data.ts";
import { escapeXml as esc } from "./charts.ts";
import { sectionsHtml, STYLE } from "./html.ts";
import { runReadOnly, type SqlAnswer } from "./sql.ts";

/** A running dashboard. */
export interface Dashboard {
  url: string;
  resultsDir: string;
  /** Stops the server (idempotent); `finished` resolves once it has. */
  close(): Promise<void>;
  finished: Promise<void>;
}

export interface DashboardOptions {
  resultsDir: string;
  /** 0 picks a free port. */
  port: number;
  hostname?: string;
  /** How often the page asks for changes (ms). */
  pollMs?: number;
}

const MAX_BODY = 100_000;

/** Starts the dashboard; a port in use is a LabError naming the port and the fix. */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const state = new DashboardState(opts.resultsDir);
  const pollMs = opts.pollMs ?? 2000;
  const ac = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { port: opts.port, hostname, signal: ac.signal, onListen: () => {} },
      (req) => handle(req, state, pollMs),
    );
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new LabError(
        `port ${opts.port} on ${hostname} is already in use (another lab serve, or another ` +
          `program): choose another with --port N, or --port 0 for any free port`,
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable || e instanceof Deno.errors.PermissionDenied) {
      throw new LabError(`cannot listen on ${hostname}:${opts.port}: ${(e as Error).message}`);
    }
    throw e;
  }
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  let closing: Promise<void> | undefined;
  // Deno.serve binds synchronously; the await keeps errors above as rejections.
  await Promise.resolve();
  return {
    url: `http://${host}:${addr.port}/`,
    resultsDir: opts.resultsDir,
    finished: server.finished,
    close() {
      if (!closing) {
        ac.abort();
        closing = server.finished;
      }
      return closing;
    },
  };
}

async function handle(req: Request, state: DashboardState, pollMs: number): Promise<Response> {
  const url = new URL(req.url);
  try {
    if (req.method === "GET" && url.pathname === "/") {
      return new Response(pageHtml(state.resultsDir, pollMs), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (req.method === "GET" && url.pathname === "/api/state") {
      return json(await state.snapshot(url.searchParams.get("since") ?? ""));
    }
    if (req.method === "POST" && url.pathname === "/api/sql") {
      const text = await req.text();
      if (text.length > MAX_BODY) {
        return json({ ok: false, refused: true, error: "statement too long" });
      }
      let sql = "";
      try {
        sql = String((JSON.parse(text) as { sql?: unknown }).sql ?? "");
      } catch {
        return json({ ok: false, refused: false, error: 'send JSON: {"sql": "..."}' });
      }
      // Refusals and query errors are answers (200, ok: false), not failed requests: the page
      // shows them, and the browser's console stays clean.
      return json(await state.sql(sql));
    }
    if (url.pathname === "/favicon.ico") return new Response(null, { status: 204 });
    return new Response("not found", { status: 404 });
  } catch (e) {
    return json({ ok: false, refused: false, error: (e as Error).message }, 500);
  }
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/** One run for the runs table: status, progress and whether a lab process still holds it. */
interface RunView {
  run_id: string;
  pipeline: string;
  file: string;
  status: string;
  started_at: string;
  finished_at: string | null;
  done: number;
  total: number;
  failed: string[];
}

/** Reads (serialized, each with a fresh read-only connection) and caches the rendered charts. */
class DashboardState {
  private chain: Promise<unknown> = Promise.resolve();
  private cached: { signature: string; html: string } | undefined;

  constructor(readonly resultsDir: string) {}

  /** Runs `fn` with the database open read-only, one at a time; null when there is none. */
  private withDb<T>(fn: (db: LabDatabase) => Promise<T>): Promise<T | null> {
    const next = this.chain.then(async () => {
      const path = databasePath(this.resultsDir);
      if (!existsSync(path)) return null;
      const db = await LabDatabase.open(path, { readOnly: true, waitMs: 3000 });
      try {
        return await fn(db);
      } finally {
        db.close();
      }
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** What changed on disk: the database (and its WAL) and the run manifests. */
  signature(): string {
    const parts: string[] = [];
    for (const f of ["lab.duckdb", "lab.duckdb.wal"]) {
      try {
        const s = Deno.statSync(join(this.resultsDir, f));
        parts.push(`${f}:${s.size}:${s.mtime?.getTime()}`);
      } catch { /* absent */ }
    }
    return parts.join("|") || "empty";
  }

  async snapshot(since: string) {
    const runs = this.runs();
    const live = lockHolder(this.resultsDir);
    const signature = this.signature();
    if (since && since === signature && this.cached?.signature === signature) {
      return { signature, unchanged: true, runs, live };
    }
    let html = this.cached?.html ?? "";
    let busy = false;
    try {
      const rendered = await this.withDb(async (db) => {
        const data = await readFrom(db, this.resultsDir);
        return sectionsHtml(data, renderCharts(data));
      });
      html = rendered ??
        `<section><p class="note">no results in ${
          esc(this.resultsDir)
        } yet: run a pipeline (lab run &lt;pipeline.ts&gt;); this page updates when it has.</p></section>`;
      this.cached = { signature, html };
    } catch (e) {
      // The runner holds the database for a moment: keep the last picture, try next poll.
      if (!(e instanceof LabError)) throw e;
      busy = true;
    }
    return { signature: busy ? "" : signature, unchanged: false, runs, live, html, busy };
  }

  runs(): RunView[] {
    let manifests: RunManifest[] = [];
    try {
      manifests = readManifests(this.resultsDir);
    } catch { /* no runs folder yet */ }
    return manifests.sort((a, b) =>
      String(b.run.started_at).localeCompare(String(a.run.started_at))
    )
      .slice(0, 20).map(({ run, stages }) => ({
        run_id: run.run_id,
        pipeline: run.pipeline,
        file: run.file,
        status: run.status,
        started_at: run.started_at,
        finished_at: run.finished_at,
        done: stages.length,
        total: run.n_stages,
        failed: stages.filter((s) => s.status === "failed").map((s) => s.name),
      }));
  }

  async sql(sql: string): Promise<SqlAnswer> {
    try {
      const r = await this.withDb((db) => runReadOnly(db, sql));
      return r ??
        { ok: false, refused: false, error: `no results database in ${this.resultsDir} yet` };
    } catch (e) {
      if (e instanceof LabError) return { ok: false, refused: false, error: e.message };
      throw e;
    }
  }
}

/** The lab process holding the results folder's lock (a run in progress), if any. */
function lockHolder(resultsDir: string): { pid: number; purpose: string; since: string } | null {
  try {
    const text = Deno.readTextFileSync(join(resultsDir, ".lock")).trim();
    if (!text) return null;
    const h = JSON.parse(text) as { pid: number; purpose: string; since: string; host: string };
    // The lock is released by the OS when its holder dies, but its text stays: check the pid.
    if (Deno.build.os === "linux" && !existsSync(`/proc/${h.pid}`)) return null;
    return { pid: h.pid, purpose: h.purpose, since: h.since };
  } catch {
    return null;
  }
}

function pageHtml(resultsDir: string, pollMs: number): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLM Efficiency Lab dashboard</title>
<style>${STYLE}
#live { font-size: 12px; color: #c8cfdb; }
#live.running { color: #8fe3a1; }
progress { width: 140px; vertical-align: middle; }
textarea { width: 100%; box-sizing: border-box; font: 13px ui-monospace, monospace; min-height: 70px; padding: 6px; }
button { font: inherit; padding: 4px 14px; margin-top: 6px; cursor: pointer; }
#sql-status.error { color: #a3283a; }
#sql-status { font-size: 13px; margin: 6px 0; }
.st-running { color: #1a7f37; font-weight: 600; }
.st-failed { color: #a3283a; font-weight: 600; }
.st-interrupted { color: #9a6700; font-weight: 600; }
</style></head>
<body><header><h1>LLM Efficiency Lab dashboard</h1>
<p>${esc(resultsDir)} · <span id="live">connecting…</span> · <span id="updated"></span></p></header>
<main>
<section id="runs-section"><h2>Runs</h2><div id="runs"><p class="note">loading…</p></div></section>
<section id="sql-section"><h2>SQL</h2>
<p class="caption">Read-only queries on lab.duckdb (at most 1000 rows shown). Statements that write are refused.</p>
<form id="sql-form"><textarea id="sql-input" spellcheck="false">SELECT configuration, weight_mb, decode_tps, ppl FROM quant_tradeoff ORDER BY weight_mb</textarea>
<button type="submit" id="sql-run">Run</button></form>
<p id="sql-status"></p><div id="sql-result"></div></section>
<div id="sections"></div>
</main>
<script>
"use strict";
const POLL_MS = ${Math.max(250, Math.floor(pollMs))};
let signature = "";
let failures = 0;
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function table(columns, rows) {
  const wrap = el("div", undefined, "table-wrap");
  const t = el("table"); const thead = el("thead"); const tr = el("tr");
  for (const c of columns) tr.appendChild(el("th", c));
  thead.appendChild(tr); t.appendChild(thead);
  const tb = el("tbody");
  for (const r of rows) {
    const row = el("tr");
    for (const c of columns) row.appendChild(el("td", fmt(r[c]), typeof r[c] === "number" ? "num" : ""));
    tb.appendChild(row);
  }
  t.appendChild(tb); wrap.appendChild(t); return wrap;
}
function renderRuns(runs, live) {
  const box = $("runs"); box.textContent = "";
  if (!runs.length) { box.appendChild(el("p", "no runs yet: lab run <pipeline.ts>", "note")); return; }
  const t = el("table"); const head = el("tr");
  for (const h of ["pipeline", "status", "progress", "started", "finished", "failed stages", "run"]) head.appendChild(el("th", h));
  const thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
  const tb = el("tbody");
  for (const r of runs) {
    const tr = el("tr");
    tr.dataset.status = r.status;
    tr.appendChild(el("td", r.pipeline));
    const stale = r.status === "running" && !live;
    tr.appendChild(el("td", stale ? "stopped (unfinished)" : r.status, "st-" + r.status));
    const td = el("td"); const p = el("progress"); p.max = Math.max(1, r.total); p.value = r.done;
    td.appendChild(p); td.appendChild(document.createTextNode(" " + r.done + "/" + r.total)); tr.appendChild(td);
    tr.appendChild(el("td", (r.started_at || "").replace("T", " ").slice(0, 19)));
    tr.appendChild(el("td", (r.finished_at || "").replace("T", " ").slice(0, 19)));
    tr.appendChild(el("td", r.failed.join(", ")));
    tr.appendChild(el("td", r.run_id));
    tb.appendChild(tr);
  }
  t.appendChild(tb); const w = el("div", undefined, "table-wrap"); w.appendChild(t); box.appendChild(w);
}
async function poll() {
  try {
    const res = await fetch("/api/state?since=" + encodeURIComponent(signature), { cache: "no-store" });
    const s = await res.json();
    failures = 0;
    renderRuns(s.runs, s.live);
    $("live").textContent = s.live ? "running: " + s.live.purpose : "idle";
    $("live").className = s.live ? "running" : "";
    if (!s.unchanged && s.html !== undefined) {
      $("sections").innerHTML = s.html;
      signature = s.signature;
      document.body.dataset.signature = s.signature;
    }
    $("updated").textContent = "checked " + new Date().toLocaleTimeString();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    failures++;
    $("live").textContent = "server not reachable (lab serve stopped?)";
    $("live").className = "";
  }
  // Bounded: back off up to 30 s while the server does not answer.
  setTimeout(poll, Math.min(30000, POLL_MS * Math.pow(2, Math.min(failures, 4))));
}
$("sql-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = $("sql-status"); const out = $("sql-result");
  status.textContent = "running…"; status.className = ""; out.textContent = "";
  try {
    const res = await fetch("/api/sql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sql: $("sql-input").value }) });
    const a = await res.json();
    if (!a.ok) { status.textContent = a.error; status.className = a.refused ? "error refused" : "error"; return; }
    status.textContent = a.rows.length + " row" + (a.rows.length === 1 ? "" : "s") + (a.truncated ? " (first 1000 shown)" : "") + " · " + a.ms.toFixed(1) + " ms";
    out.appendChild(table(a.columns, a.rows));
  } catch (e) {
    status.textContent = "the server did not answer: " + e; status.className = "error";
  }
});
poll();
</script></body></html>
`;
}
