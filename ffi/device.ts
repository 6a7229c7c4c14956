// Devices, CUDA queries and memory statistics.
import { checkStatus, L, TorchError } from "./lib.ts";
import { type DeviceSpec, parseDevice } from "./dtype.ts";

/** Parses a device name and checks that it can be used here. */
export function requireDevice(device: string): DeviceSpec {
  const d = parseDevice(device);
  if (d.type === 1) {
    if (!cuda.isAvailable()) {
      throw new TorchError(
        `device '${device}' requested but CUDA is not available here ` +
          `(${L().lt_has_cuda_build() ? "no GPU is visible" : "this libtorch is CPU-only"}). ` +
          "Use device 'cpu', or set LIBTORCH to a CUDA libtorch on a machine with a GPU " +
          "and run deno task setup.",
      );
    }
    const n = cuda.deviceCount();
    if (d.index >= n) {
      throw new TorchError(`device '${device}' does not exist: this machine has ${n} GPU(s)`);
    }
  }
  return d;
}

/** CUDA queries; all answer sensibly on a CPU-only build. */
export const cuda = {
  /** Whether a CUDA device can be used. */
  isAvailable(): boolean {
    return L().lt_cuda_available() === 1;
  },
  /** Number of visible GPUs. */
  deviceCount(): number {
    return L().lt_cuda_device_count();
  },
  /** Waits for queued GPU work (no-op without CUDA). */
  synchronize(device = 0): void {
    if (!cuda.isAvailable()) return;
    checkStatus(L().lt_cuda_synchronize(device), "cuda.synchronize");
  },
};

/** Memory figures in bytes. */
export interface MemoryStats {
  /** Bytes in use now (CUDA allocator, or process RSS on CPU). */
  allocated: number;
  /** High-water mark since the last resetPeak(). */
  peak: number;
  /** CUDA allocator reserved bytes (equal to allocated on CPU). */
  reserved: number;
  /** High-water mark of reserved bytes since the last resetPeak() (equal to peak on CPU). */
  peakReserved: number;
  /** "cuda-allocator" or "process-rss". */
  source: string;
}

const memScratch = new BigInt64Array(4);

function readProcStatus(): { rss: number; hwm: number } {
  const text = Deno.readTextFileSync("/proc/self/status");
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

function isCuda(device: string): boolean {
  return device.startsWith("cuda") && cuda.isAvailable();
}

/** Memory statistics: the CUDA caching allocator's on GPU, process RSS on CPU. */
export const memory = {
  /** Full statistics for a device. */
  stats(device = "cpu"): MemoryStats {
    if (isCuda(device)) {
      const d = parseDevice(device);
      checkStatus(L().lt_cuda_memory(d.index, memScratch), "memory.stats");
      return {
        allocated: Number(memScratch[0]),
        peak: Number(memScratch[1]),
        reserved: Number(memScratch[2]),
        peakReserved: Number(memScratch[3]),
        source: "cuda-allocator",
      };
    }
    const { rss, hwm } = readProcStatus();
    return { allocated: rss, peak: hwm, reserved: rss, peakReserved: hwm, source: "process-rss" };
  },
  /** Bytes in use now. */
  allocated(device = "cpu"): number {
    return memory.stats(device).allocated;
  },
  /** High-water mark since the last resetPeak(). */
  peak(device = "cpu"): number {
    return memory.stats(device).peak;
  },
  /** Starts a new high-water mark. */
  resetPeak(device = "cpu"): void {
    if (isCuda(device)) {
      checkStatus(L().lt_cuda_reset_peak(parseDevice(device).index), "memory.resetPeak");
      return;
    }
    // Linux resets VmHWM to the current RSS when "5" is written to clear_refs.
    try {
      Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    } catch {
      // Not Linux or not permitted: the peak keeps counting from process start.
    }
  },
};
