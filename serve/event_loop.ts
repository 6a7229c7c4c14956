// Handing control back to the event loop between decode steps.
//
// A timer, not a microtask or a MessageChannel message: those resolve without the runtime ever
// waiting, and Deno's HTTP server writes response bytes (each streamed token) only when it does,
// so tokens then reached clients in bursts. A zero timer lets pending network reads and writes
// run; it costs about a millisecond per step, the same for every batch size.

/** Resolves after the event loop has had a turn (network I/O, timers, aborts). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
