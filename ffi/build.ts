// Compiles the C ABI shim (shim.cpp) into ffi/build/, rebuilding only when
// its sources, the compiler flags or the linked libtorch change.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Libtorch, locateLibtorch, missingLibtorchMessage } from "./libtorch_locate.ts";

const FFI_DIR = dirname(fileURLToPath(import.meta.url));
/** Folder holding the built shim (ignored by git). */
export const BUILD_DIR = join(FFI_DIR, "build");
/** Path of the built shared library. */
export const SHIM_PATH = join(BUILD_DIR, "liblab_torch.so");
const STAMP_PATH = join(BUILD_DIR, "stamp.json");
// Every C++ source and header in ffi/ is part of the shim.
function sources(): string[] {
  return [...Deno.readDirSync(FFI_DIR)]
    .map((e) => e.name)
    .filter((n) => /\.(cpp|h)$/.test(n))
    .sort();
}

/** What a build decided and where the library is. */
export interface BuildResult {
  path: string;
  rebuilt: boolean;
  libtorch: Libtorch;
  seconds: number;
}

function cudaIncludeDirs(): string[] {
  const candidates = [Deno.env.get("CUDA_HOME"), "/usr/local/cuda"].filter(Boolean) as string[];
  return candidates.map((d) => join(d, "include")).filter((d) => existsSync(d));
}

// pip wheels and Debian differ in the C++ ABI of std::string; match the library.
async function usesCxx11Abi(libDir: string): Promise<boolean> {
  const out = await new Deno.Command("nm", { args: ["-D", join(libDir, "libc10.so")] }).output();
  return new TextDecoder().decode(out.stdout).includes("__cxx11");
}

function cpuVectorFlags(): string[] {
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1] ?? "";
    const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
    if (!has("avx2") || !has("fma")) return [];
    return has("f16c") ? ["-mavx2", "-mfma", "-mf16c"] : ["-mavx2", "-mfma"];
  } catch {
    return [];
  }
}

async function compilerArgs(lt: Libtorch): Promise<string[]> {
  // -fopenmp: at::parallel_for is a header template whose `#pragma omp parallel` is compiled
  // into the shim; without the flag every parallel loop of ours silently ran on one thread.
  const args = [
    "-O3",
    "-std=c++17",
    "-fopenmp",
    "-shared",
    "-fPIC",
    "-Wno-deprecated-declarations",
  ];
  // The library is built on the machine that runs it: use its vector units.
  args.push(...cpuVectorFlags());
  for (const d of lt.includeDirs) args.push(`-I${d}`);
  if (lt.libDir) {
    args.push(`-D_GLIBCXX_USE_CXX11_ABI=${(await usesCxx11Abi(lt.libDir)) ? 1 : 0}`);
    args.push(`-L${lt.libDir}`, `-Wl,-rpath,${lt.libDir}`);
  }
  if (lt.cuda) {
    args.push("-DLT_WITH_CUDA", ...cudaIncludeDirs().map((d) => `-I${d}`));
  }
  args.push(...sources().filter((f) => f.endsWith(".cpp")).map((f) => join(FFI_DIR, f)));
  args.push("-o", "OUT");
  // --no-as-needed keeps libtorch_cuda loaded: it registers the CUDA kernels.
  args.push("-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10");
  if (lt.cuda) args.push("-ltorch_cuda", "-lc10_cuda");
  return args;
}

function libtorchIdentity(lt: Libtorch): string {
  const dir = lt.libDir ?? "/usr/lib/x86_64-linux-gnu";
  const lib = join(dir, "libtorch_cpu.so");
  const st = existsSync(lib) ? statSync(lib) : null;
  return `${lib}:${st?.size}:${st?.mtimeMs}`;
}

/** Builds the shim if missing or stale; returns where it is. */
export async function ensureShim(opts: { force?: boolean; log?: (s: string) => void } = {}) {
  const started = performance.now();
  const lt = locateLibtorch();
  if (!lt) throw new Error(missingLibtorchMessage());
  const args = await compilerArgs(lt);
  const hash = createHash("sha256");
  for (const f of sources()) hash.update(readFileSync(join(FFI_DIR, f)));
  hash.update(JSON.stringify(args));
  hash.update(libtorchIdentity(lt));
  const digest = hash.digest("hex");
  if (!opts.force && existsSync(SHIM_PATH) && existsSync(STAMP_PATH)) {
    const stamp = JSON.parse(readFileSync(STAMP_PATH, "utf8"));
    if (stamp.hash === digest) {
      return { path: SHIM_PATH, rebuilt: false, libtorch: lt, seconds: 0 } as BuildResult;
    }
  }
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${SHIM_PATH}.tmp-${Deno.pid}`;
  opts.log?.(`building the libtorch shim against ${lt.root} (${lt.cuda ? "CUDA" : "CPU"})…`);
  const cmd = new Deno.Command("g++", {
    args: args.map((a) => (a === "OUT" ? tmp : a)),
    stdout: "piped",
    stderr: "piped",
  });
  let out: Deno.CommandOutput;
  try {
    out = await cmd.output();
  } catch (e) {
    throw new Error(
      `could not run g++ (${(e as Error).message}). Install it: sudo apt-get install -y g++`,
    );
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`building ffi/shim.cpp failed:\n${err.slice(0, 4000)}`);
  }
  // Rename is atomic, so a concurrent loader never sees a half-written library.
  Deno.renameSync(tmp, SHIM_PATH);
  Deno.writeTextFileSync(
    STAMP_PATH,
    JSON.stringify({ hash: digest, libtorch: lt, args, builtAt: new Date().toISOString() }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { path: SHIM_PATH, rebuilt: true, libtorch: lt, seconds } as BuildResult;
}

/** What the last build recorded (its hash covers sources, flags and libtorch), or null. */
export function shimStamp(): { hash: string; libtorch: Libtorch } | null {
  try {
    return JSON.parse(readFileSync(STAMP_PATH, "utf8"));
  } catch {
    return null;
  }
}
