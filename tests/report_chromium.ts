/**
 * A small headless-Chromium driver over the DevTools protocol (Deno's WebSocket, no extra
 * package), for the report and dashboard tests: open a page, evaluate, collect console errors,
 * take screenshots.
 */
import { join } from "node:path";

export const CHROMIUM = Deno.env.get("LAB_CHROMIUM") ?? "/usr/bin/chromium";

/** True when Chromium is installed; tests skip (with a message) otherwise. */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

export const NO_CHROMIUM =
  `skipped: ${CHROMIUM} is absent (apt-get install -y chromium; CI installs it)`;

type Msg = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  sessionId?: string;
  result?: unknown;
  error?: { message: string };
};

/** A page in a headless Chromium. */
export class Browser {
  private next = 1;
  private waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private listeners: ((m: Msg) => void)[] = [];
  /** Console errors, uncaught exceptions and failed loads seen on the page. */
  errors: string[] = [];
  private session = "";

  private constructor(
    private proc: Deno.ChildProcess,
    private ws: WebSocket,
    private profile: string,
  ) {
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as Msg;
      if (m.id !== undefined && this.waiting.has(m.id)) {
        const w = this.waiting.get(m.id)!;
        this.waiting.delete(m.id);
        if (m.error) w.reject(new Error(m.error.message));
        else w.resolve(m.result);
        return;
      }
      if (m.method === "Runtime.consoleAPICalled" && m.params?.type === "error") {
        const args = (m.params.args as { value?: unknown; description?: string }[]) ?? [];
        this.errors.push(`console.error: ${args.map((a) => a.value ?? a.description).join(" ")}`);
      } else if (m.method === "Runtime.exceptionThrown") {
        const d = m.params?.exceptionDetails as {
          text?: string;
          exception?: { description?: string };
        };
        this.errors.push(`exception: ${d?.exception?.description ?? d?.text}`);
      } else if (m.method === "Log.entryAdded") {
        const e = m.params?.entry as { level: string; text: string; url?: string };
        if (e.level === "error") this.errors.push(`log: ${e.text} ${e.url ?? ""}`);
      }
      for (const l of this.listeners) l(m);
    };
  }

  /** Starts Chromium with a fresh profile and opens one blank page. */
  static async launch(): Promise<Browser> {
    const profile = Deno.makeTempDirSync({ prefix: "lab-chromium-" });
    const proc = new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "--window-size=1280,900",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // The DevTools address is printed on stderr; give up after 20 s.
    const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    const deadline = Date.now() + 20_000;
    let url = "";
    while (!url) {
      const timer = new Promise<{ done: true; value: undefined }>((r) =>
        setTimeout(() => r({ done: true, value: undefined }), Math.max(0, deadline - Date.now()))
      );
      const { done, value } = await Promise.race([reader.read(), timer]);
      if (done) {
        try {
          proc.kill("SIGKILL");
        } catch { /* already gone */ }
        throw new Error(`chromium did not start: ${buf.slice(-500)}`);
      }
      buf += value;
      url = /DevTools listening on (ws:\/\/\S+)/.exec(buf)?.[1] ?? "";
    }
    // Keep draining stderr so Chromium never blocks on a full pipe.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* discard */ }
      } catch { /* closed */ }
    })();
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    const b = new Browser(proc, ws, profile);
    const { targetId } = await b.send("Target.createTarget", { url: "about:blank" }) as {
      targetId: string;
    };
    const { sessionId } = await b.send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    b.session = sessionId;
    await b.page("Page.enable");
    await b.page("Runtime.enable");
    await b.page("Log.enable");
    await b.page("Emulation.setDeviceMetricsOverride", {
      width: 1280,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return b;
  }

  private send(method: string, params: Record<string, unknown> = {}, sessionId?: string) {
    const id = this.next++;
    const p = new Promise<unknown>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      setTimeout(() => {
        if (this.waiting.delete(id)) reject(new Error(`${method}: no answer in 30 s`));
      }, 30_000);
    });
    this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return p;
  }

  /** A DevTools command on the page. */
  page(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    return this.send(method, params, this.session);
  }

  /** Navigates and waits for the load event. */
  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => {
      const l = (m: Msg) => {
        if (m.method === "Page.loadEventFired" && m.sessionId === this.session) {
          this.listeners = this.listeners.filter((x) => x !== l);
          resolve();
        }
      };
      this.listeners.push(l);
    });
    const r = await this.page("Page.navigate", { url }) as { errorText?: string };
    if (r.errorText) throw new Error(`cannot open ${url}: ${r.errorText}`);
    await loaded;
  }

  /** Evaluates an expression in the page (awaiting promises) and returns its JSON value. */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.page("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as {
      result: { value: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) {
      throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
    }
    return r.result.value;
  }

  /** Polls `expression` until it is truthy (every 100 ms, `timeoutMs` at most). */
  async waitFor(expression: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.eval(`!!(${expression})`)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${expression}`);
  }

  /** Saves a PNG screenshot (the whole page, or the window) to `path`. */
  async screenshot(path: string, opts: { fullPage?: boolean } = {}): Promise<void> {
    const { height } = await this.eval<{ height: number }>(
      opts.fullPage === false
        ? "({ height: window.innerHeight })"
        : "({ height: Math.min(8000, document.documentElement.scrollHeight) })",
    );
    const r = await this.page("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width: 1280, height, scale: 1 },
    }) as { data: string };
    const bin = atob(r.data);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    Deno.writeFileSync(path, bytes);
  }

  /** Closes the page and the browser, and removes the profile. */
  async close(): Promise<void> {
    try {
      await Promise.race([this.send("Browser.close"), new Promise((r) => setTimeout(r, 2000))]);
    } catch { /* the socket may already be closed */ }
    try {
      this.ws.close();
    } catch { /* closed */ }
    try {
      this.proc.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.proc.status;
    await this.proc.stderr.cancel().catch(() => {});
    for (let i = 0; i < 5; i++) {
      try {
        Deno.removeSync(this.profile, { recursive: true });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/** Where screenshots go: LAB_TEST_ARTIFACTS, else a fresh temp folder (printed by tests). */
export function artifactsDir(): string {
  const d = Deno.env.get("LAB_TEST_ARTIFACTS") ??
    join(Deno.env.get("TMPDIR") ?? "/tmp", "lab-report-artifacts");
  Deno.mkdirSync(d, { recursive: true });
  return d;
}
