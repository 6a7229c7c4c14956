/** Placeholder replaced below. */
export function startDashboard(
  _o: { resultsDir: string; port: number; hostname: string },
): Promise<{ url: string; resultsDir: string; close(): void; finished: Promise<void> }> {
  throw new Error("not yet");
}
