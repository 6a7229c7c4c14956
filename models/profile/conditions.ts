// The conditions a timing was taken under. On shared machines one decode figure swung 10×
// between rounds; a figure is only worth comparing when we know whether others were using the
// cores meanwhile. Linux /proc and /sys give that cheaply; elsewhere the fields stay null.
import process from "node:process";

/** What was true while a timing stage ran. */
export interface TimingConditions {
  /** 1-minute load average before and after. */
  load1Before: number | null;
  load1After: number | null;
  wallS: number;
  /** CPU seconds of this process (all its threads) during the measurement. */
  ownCpuS: number;
  /** CPU seconds every other process took meanwhile (/proc/stat busy time minus ours). */
  otherCpuS: number | null;
  cores: number;
  /** otherCpuS as a share of all cores' time: 0 = the machine was ours. */
  othersShare: number | null;
  /** othersShare above NOISY_SHARE: the figures may be slowed by others. */
  noisy: boolean;
  cpuModel: string | null;
  /** The CPU's vector features that pick kernels (avx2, fma, f16c, avx512f, …). */
  cpuFlags: string | null;
  /** cpufreq governor of cpu0 (performance, powersave, …), where readable. */
  governor: string | null;
}

/** Others' share of the cores above which a measurement is flagged noisy. */
export const NOISY_SHARE = 0.15;

const FLAGS = [
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512bw",
  "avx512vl",
  "avx512_vnni",
  "avx512_bf16",
];

function read(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function load1(): number | null {
  const t = read("/proc/loadavg");
  const v = t ? Number(t.split(/\s+/)[0]) : NaN;
  return Number.isFinite(v) ? v : null;
}

/** Busy CPU seconds of the whole machine since boot (user, nice, system, irq, softirq, steal). */
function busySeconds(): number | null {
  const t = read("/proc/stat");
  const line = t?.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
  // USER_HZ is 100 on every Linux the lab runs on.
  return Number.isFinite(busy) ? busy / 100 : null;
}

function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** The CPU model and its kernel-relevant flags (from /proc/cpuinfo). */
export function cpuIdentity(): { model: string | null; flags: string | null } {
  const info = read("/proc/cpuinfo");
  if (!info) return { model: null, flags: null };
  const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? null;
  const have = new Set((/^flags\s*:\s*(.+)$/m.exec(info)?.[1] ?? "").split(/\s+/));
  return { model, flags: FLAGS.filter((f) => have.has(f)).join(" ") || null };
}

/** Starts watching; the returned function ends the watch and returns the conditions. */
export function watchConditions(): () => TimingConditions {
  const before = {
    load1: load1(),
    busy: busySeconds(),
    own: ownCpuSeconds(),
    t: performance.now(),
  };
  return () => {
    const wallS = (performance.now() - before.t) / 1000;
    const own = ownCpuSeconds() - before.own;
    const busyNow = busySeconds();
    const cores = navigator.hardwareConcurrency || 1;
    const other = busyNow !== null && before.busy !== null
      ? Math.max(0, busyNow - before.busy - own)
      : null;
    const share = other !== null && wallS > 0 ? other / (wallS * cores) : null;
    const id = cpuIdentity();
    return {
      load1Before: before.load1,
      load1After: load1(),
      wallS,
      ownCpuS: own,
      otherCpuS: other,
      cores,
      othersShare: share,
      // /proc/stat counts in 10 ms ticks: a share is only read into short stages past that.
      noisy: share !== null && share > NOISY_SHARE && other! > 0.05,
      cpuModel: id.model,
      cpuFlags: id.flags,
      governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")?.trim() ?? null,
    };
  };
}
