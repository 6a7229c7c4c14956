// Quantization schemes: what users write ("nf4", "int4-g128", "bf16", …) and what it means.
import { type DType, hasFloat8, type QuantKind } from "../../ffi/mod.ts";
import { LabError } from "../../errors.ts";

/** A parsed scheme. */
export type Scheme =
  | { name: string; kind: "cast"; dtype: DType }
  | {
    name: string;
    kind: QuantKind;
    /** Block (nf4/fp4) or group (int4) size; 0 for per-channel formats. */
    block: number;
    /** Double-quantization block for the absmax values (nf4/fp4); 0 = off. */
    block2: number;
  };

/** Every scheme name the lab knows, for help text and validation. */
export const SCHEME_NAMES = [
  "fp32",
  "fp16",
  "bf16",
  "int8",
  "nf4",
  "nf4-nodq",
  "fp4",
  "fp4-nodq",
  "int4-g32",
  "int4-g64",
  "int4-g128",
  "fp8-e4m3",
] as const;

/** Error for a scheme the lab or this libtorch cannot do. */
export class SchemeError extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "SchemeError";
  }
}

const CASTS: Record<string, DType> = { fp32: "float32", fp16: "float16", bf16: "bfloat16" };

/**
 * Parses a scheme name. `nf4`/`fp4` use blocks of 64 with double quantization of
 * the absmax values in blocks of 256 (`-nodq` turns it off); `int4` is `int4-g128`.
 */
export function parseScheme(name: string): Scheme {
  if (CASTS[name]) return { name, kind: "cast", dtype: CASTS[name] };
  if (name === "int8") return { name, kind: "int8", block: 0, block2: 0 };
  const blockwise = /^(nf4|fp4)(-nodq)?$/.exec(name);
  if (blockwise) {
    return { name, kind: blockwise[1] as "nf4" | "fp4", block: 64, block2: blockwise[2] ? 0 : 256 };
  }
  const int4 = /^int4(?:-g(\d+))?$/.exec(name);
  if (int4) {
    const g = Number(int4[1] ?? 128);
    if (![32, 64, 128].includes(g)) {
      throw new SchemeError(`scheme '${name}': int4 group size must be 32, 64 or 128`);
    }
    return { name: `int4-g${g}`, kind: "int4", block: g, block2: 0 };
  }
  if (name === "fp8-e4m3") {
    if (!hasFloat8()) {
      throw new SchemeError(
        "scheme 'fp8-e4m3' needs float8 support, which this libtorch lacks (it came in 2.1). " +
          "Use int8 here, or set LIBTORCH to a libtorch 2.1+ and run deno task setup.",
      );
    }
    return { name, kind: "fp8", block: 0, block2: 0 };
  }
  throw new SchemeError(
    `unknown quantization scheme '${name}': use one of ${SCHEME_NAMES.join(", ")}`,
  );
}

/** The schemes this libtorch can run (fp8 only where float8 exists). */
export function supportedSchemes(): string[] {
  return SCHEME_NAMES.filter((s) => s !== "fp8-e4m3" || hasFloat8());
}

/** Bytes an `[out, in]` weight takes in `scheme` (packed data and scales; bias excluded). */
export function packedBytes(s: Scheme, out: number, inF: number): number {
  const n = out * inF;
  switch (s.kind) {
    case "cast":
      return n * ({ float32: 4, float16: 2, bfloat16: 2 } as Record<string, number>)[s.dtype];
    case "int8":
    case "fp8":
      return n + 4 * out;
    case "nf4":
    case "fp4": {
      const nb = Math.ceil(n / s.block);
      const absmax = s.block2 ? nb + Math.ceil(nb / s.block2) * 4 + 4 : nb * 4;
      return Math.ceil(n / 2) + absmax;
    }
    case "int4":
      return n / 2 + (n / s.block) * 3;
    case "half":
      return n * 2;
  }
}
