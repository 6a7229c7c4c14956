// The result-changing environment a cache key includes, supplied by the torch side through a
// provider.
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

let pinned: Partial<Record<Device, Record<string, unknown>>> = {};

/**
 * Pins the environment that keys use, per device, whatever the provider says. A remote worker
 * (a Slurm job on another node) pins the coordinator's, so that it finds the stage by the key
 * the coordinator planned; its own machine is still recorded in the entry's provenance.
 */
export function pinEnvironment(byDevice: Partial<Record<Device, Record<string, unknown>>>): void {
  pinned = { ...byDevice };
}

/** The environment for stages on `device` (memoised until the provider changes). */
export function environmentFor(device: Device): Record<string, unknown> {
  return pinned[device] ?? localEnvironmentFor(device);
}

/** This machine's environment for `device`, from the provider, ignoring any pin. */
export function localEnvironmentFor(device: Device): Record<string, unknown> {
  let env = cache.get(device);
  if (!env) {
    env = { ...provider({ device }) };
    cache.set(device, env);
  }
  return env;
}
