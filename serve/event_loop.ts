// Handing control back to the event loop between decode steps without timer clamping.
//
// setTimeout(0) is clamped to a few milliseconds once timers nest, which would add that much to
// every decode step; a message through a MessageChannel is a macrotask without the clamp, so
// pending network reads and writes run and the next step starts at once.

/** Resolves after the event loop has had a turn (network I/O, timers, aborts). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(null);
  });
}
