// The torch side of each result's provenance: libtorch's version and build, the instruction set
// the packed-weight kernels dispatched to, threads, the CPU and the GPU. Read only when the stage
// loaded libtorch itself: describing the environment must not load it for stages that never did.
import { setProvenanceProvider } from "../engine/provenance.ts";
import { shimStamp } from "../ffi/build.ts";
import { isLoaded } from "../ffi/lib.ts";
import { cuda, getNumThreads, kernelIsa, version } from "../ffi/mod.ts";
import { cpuIdentity } from "../models/profile/conditions.ts";

let gpu: { name: string | null; arch: string | null } | undefined;

/** The first GPU's name and compute capability, from nvidia-smi (once per process). */
function gpuIdentity(): { name: string | null; arch: string | null } {
  if (gpu) return gpu;
  gpu = { name: null, arch: null };
  try {
    const out = new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (out.success) {
      const [name, cap] = new TextDecoder().decode(out.stdout).trim().split(/,\s*/);
      gpu = { name: name || null, arch: cap ? `sm_${cap.replace(".", "")}` : null };
    }
  } catch { /* no driver */ }
  return gpu;
}

setProvenanceProvider(() => {
  const cpu = cpuIdentity();
  const stamp = shimStamp();
  const out: Record<string, unknown> = {
    cpu_model: cpu.model,
    cpu_flags: cpu.flags,
    libtorch_build: stamp ? (stamp.libtorch.cuda ? "cuda" : "cpu") : null,
    shim: stamp?.hash.slice(0, 16) ?? null,
  };
  if (!isLoaded()) return out;
  out.libtorch = version();
  out.threads = getNumThreads();
  out.kernel_isa = kernelIsa();
  if (cuda.isAvailable()) {
    const g = gpuIdentity();
    out.device_name = g.name;
    out.cuda_arch = g.arch;
  } else out.device_name = cpu.model;
  return out;
});
