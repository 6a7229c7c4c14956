// `deno task setup`: checks system needs, installs them where allowed, builds the shim.
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { ensureShim } from "../ffi/build.ts";
import { DEBIAN_PACKAGES, locateLibtorch } from "../ffi/libtorch_locate.ts";
import { ensureLlamaCpp } from "../ffi/llama/install.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quiet: { type: "boolean", default: false },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(`deno task setup [--force] [--quiet]

Finds libtorch ($LIBTORCH first, else Debian's libtorch-dev), installs
${DEBIAN_PACKAGES.join(" ")} when missing and running as root on Debian/Ubuntu,
warns when the reference BLAS would be used, builds ffi/shim.cpp into ffi/build/, and fetches
the pinned prebuilt libllama (npm @node-llama-cpp/linux-x64) for the llama.cpp engine.`);
  Deno.exit(0);
}

const log = (s: string) => {
  if (!values.quiet) console.error(s);
};

function isRoot(): boolean {
  return Deno.uid?.() === 0;
}

function isDebianLike(): boolean {
  return existsSync("/etc/debian_version") && existsSync("/usr/bin/apt-get");
}

/** Where apt-get's full output goes: shown only when a step fails. */
const SETUP_LOG = "results/setup.log";

// One progress line per step; apt-get prints hundreds of lines that matter only when it fails.
async function runStep(what: string, cmd: string, args: string[]): Promise<boolean> {
  console.error(`setup: ${what}…`);
  const out = await new Deno.Command(cmd, {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  Deno.mkdirSync("results", { recursive: true });
  Deno.writeTextFileSync(SETUP_LOG, `$ ${cmd} ${args.join(" ")}\n${text}`, { append: true });
  if (!out.success) console.error(text);
  return out.success;
}

async function aptInstall(pkgs: string[]): Promise<boolean> {
  Deno.mkdirSync("results", { recursive: true });
  Deno.writeTextFileSync(SETUP_LOG, "");
  return await runStep("apt-get update", "apt-get", ["update", "-qq"]) &&
    await runStep(`installing ${pkgs.join(" ")} (apt-get, log in ${SETUP_LOG})`, "apt-get", [
      "install",
      "-y",
      "-qq",
      ...pkgs,
    ]);
}

function openblasPresent(): boolean {
  return ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"].some((d) =>
    existsSync(`${d}/openblas-pthread/libblas.so.3`)
  );
}

async function main(): Promise<number> {
  let lt;
  try {
    lt = locateLibtorch();
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  const missing = !lt || (lt.source === "debian" && !openblasPresent());
  if (missing && !Deno.env.get("LIBTORCH")) {
    const pkgs = !lt ? DEBIAN_PACKAGES : ["libopenblas0-pthread"];
    if (isRoot() && isDebianLike()) {
      if (!(await aptInstall(pkgs))) {
        console.error(
          `apt-get install ${pkgs.join(" ")} failed; its output is above and in ${SETUP_LOG}.`,
        );
        return 1;
      }
      lt = locateLibtorch();
    } else {
      console.error(
        `missing system packages. Run:\n  sudo apt-get update && sudo apt-get install -y ${
          pkgs.join(" ")
        }\nor set LIBTORCH to a libtorch folder, then run: deno task setup`,
      );
      if (!lt) return 1;
    }
  }
  if (lt?.source === "debian" && !openblasPresent()) {
    console.error(
      "\n!!! WARNING: libtorch will use the reference BLAS: matrix products run ~34x slower.\n" +
        "!!! Install OpenBLAS: sudo apt-get install -y libopenblas0-pthread\n",
    );
  }
  try {
    const r = await ensureShim({ force: values.force, log });
    if (r.rebuilt) log(`built ${r.path} in ${r.seconds.toFixed(1)} s`);
    else log(`shim up to date: ${r.path}`);
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  // llama.cpp is a second engine: without it only its stages refuse, so setup goes on.
  const llama = await ensureLlamaCpp();
  if (llama.ok) log(llama.message);
  else console.error(`warning: ${llama.message}`);
  return 0;
}

Deno.exit(await main());
