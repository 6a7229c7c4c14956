// `lab serve`: a local dashboard over the live results (runs, charts, a read-only SQL box).
import type { Command } from "commander";
import { resultsDir } from "./common.ts";

/** `lab serve [--port N] [--host H]` */
export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "a local dashboard over the live results: runs, charts, a read-only SQL box (Ctrl-C stops)",
    )
    .option("--port <n>", "port to listen on (0: any free port)", "8765")
    .option("--host <host>", "address to bind (default 127.0.0.1: this machine only)", "127.0.0.1")
    .action(async (opts: { port: string; host: string }, cmd: Command) => {
      const { LabError } = await import("../../engine/errors.ts");
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new LabError(`--port must be an integer from 0 to 65535, got ${opts.port}`);
      }
      const { startDashboard } = await import("../../reports/serve.ts");
      const dash = await startDashboard({ resultsDir: resultsDir(cmd), port, hostname: opts.host });
      console.log(`dashboard on ${dash.url} over ${dash.resultsDir} (Ctrl-C stops)`);
      const stop = () => dash.close();
      Deno.addSignalListener("SIGINT", stop);
      try {
        await dash.finished;
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
      }
    });
}
