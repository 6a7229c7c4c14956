/** Where a stage wants to run. "any" runs on a CPU slot. */
export type Device = "cpu" | "gpu" | "any";

/** Returns the result-changing environment (libtorch version, device kind, dtype...). */
export type EnvironmentProvider = (info: { device: Device }) => Record<string, unknown>;

let provider: EnvironmentProvider = () => ({});
const cache = new Map<Device, Record<string, unknown>>();

/**
 * Registers the function that describes the result-changing environment. It becomes part of
 * every cache key; torch code registers one so that the engine never imports torch.
 */
export function setEnvironmentProvider(fn: EnvironmentProvider | undefined): void {
  provider = fn ?? (() => ({}));
  cache.clear();
}

/** The environment for stages on `device` (memoised until the provider changes). */
export function environmentFor(device: Device): Record<string, unknown> {
  let env = cache.get(device);
  if (!env) {
    env = { ...provider({ device }) };
    cache.set(device, env);
  }
  return env;
}
