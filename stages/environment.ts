// The result-changing environment that goes into every built-in stage's cache key: the built
// shim (its hash covers the C++ sources, the compiler flags and the libtorch it links), the
// device kind and the CPU model (timings taken on another machine are other results). It reads
// files only, so planning never loads libtorch.
import { setEnvironmentProvider } from "../engine/environment.ts";
import { shimStamp } from "../ffi/build.ts";

function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

setEnvironmentProvider(({ device }) => {
  const stamp = shimStamp();
  return {
    shim: stamp?.hash.slice(0, 16) ?? "unbuilt",
    libtorch: stamp?.libtorch.root ?? null,
    device: device === "gpu" ? "cuda" : "cpu",
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency || 1,
  };
});
