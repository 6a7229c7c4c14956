// Finds the libtorch the shim compiles and links against.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Where a libtorch lives and how to compile against it. */
export interface Libtorch {
  /** "env" when named by $LIBTORCH, "debian" for libtorch-dev. */
  source: "env" | "debian";
  root: string;
  includeDirs: string[];
  libDir: string | null;
  cuda: boolean;
}

const DEBIAN_LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"];

/** The install commands for a Debian/Ubuntu machine. */
export const DEBIAN_PACKAGES = ["libtorch-dev", "libopenblas0-pthread", "g++"];

/** Returns the libtorch to use, or null with nothing found. Throws on a bad $LIBTORCH. */
export function locateLibtorch(env = Deno.env.get("LIBTORCH")): Libtorch | null {
  if (env) {
    const root = env.replace(/\/+$/, "");
    const include = join(root, "include");
    const lib = join(root, "lib");
    if (!existsSync(join(include, "ATen", "ATen.h")) || !existsSync(lib)) {
      throw new Error(
        `LIBTORCH=${env} is not a libtorch folder: expected ${include}/ATen/ATen.h and ${lib}/. ` +
          "Point LIBTORCH at an unzipped libtorch, or at the `torch` folder of a pip install " +
          '(python3 -c "import torch,os; print(os.path.dirname(torch.__file__))").',
      );
    }
    const libs = readdirSync(lib);
    return {
      source: "env",
      root,
      includeDirs: [include, join(include, "torch", "csrc", "api", "include")],
      libDir: lib,
      cuda: libs.some((f) => f.startsWith("libtorch_cuda")),
    };
  }
  if (!existsSync("/usr/include/ATen/ATen.h")) return null;
  const libDir = DEBIAN_LIB_DIRS.find((d) => existsSync(join(d, "libtorch_cpu.so")));
  if (!libDir) return null;
  return {
    source: "debian",
    root: "/usr",
    includeDirs: ["/usr/include/torch/csrc/api/include"],
    libDir: null,
    cuda: false,
  };
}

/** The plain-language message for a machine without libtorch. */
export function missingLibtorchMessage(): string {
  return [
    "libtorch was not found.",
    "  On Debian/Ubuntu:  sudo apt-get install -y " + DEBIAN_PACKAGES.join(" "),
    "  Or set LIBTORCH to an unzipped libtorch (or the `torch` folder of a pip install),",
    "  then run: deno task setup",
  ].join("\n");
}
