// GPU power draw sampled through nvidia-smi while work runs: energy is measured where it can be,
// and absent (null) elsewhere — never estimated.

/** A running power sampler. */
export interface PowerSampler {
  /** Stops sampling; mean watts over the samples, or null when none arrived. */
  stop(): Promise<number | null>;
}

/** Starts sampling GPU `index` every `intervalMs`, or returns null without nvidia-smi. */
export function startPowerSampler(index = 0, intervalMs = 100): PowerSampler | null {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("nvidia-smi", {
      args: [
        `--id=${index}`,
        "--query-gpu=power.draw",
        "--format=csv,noheader,nounits",
        `-lms=${intervalMs}`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch {
    return null;
  }
  const samples: number[] = [];
  const reading = (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stdout) {
      buf += dec.decode(chunk);
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const l of lines) {
        const w = Number(l.trim());
        if (Number.isFinite(w)) samples.push(w);
      }
    }
  })();
  return {
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await reading.catch(() => {});
      await child.status;
      return samples.length ? samples.reduce((s, x) => s + x, 0) / samples.length : null;
    },
  };
}
