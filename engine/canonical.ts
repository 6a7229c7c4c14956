// Canonical JSON and BLAKE3 hashing, the two halves of every cache key.
import { createBLAKE3, type IHasher } from "hash-wasm";

/**
 * JSON with object keys sorted at every level, so that equal values give equal text.
 * Rejects what JSON cannot represent faithfully (functions, symbols, bigint, NaN/Infinity).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalize(value, "$"));
}

function canonicalize(v: unknown, path: string): unknown {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError(`${path}: ${v} cannot be part of a cache key`);
    return Object.is(v, -0) ? 0 : v;
  }
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    return v.map((x, i) => canonicalize(x === undefined ? null : x, `${path}[${i}]`));
  }
  if (typeof v === "object") {
    if (v instanceof Date) return v.toISOString();
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonicalize(x, `${path}.${k}`);
    }
    return out;
  }
  throw new TypeError(
    `${path}: a ${typeof v} cannot be part of a cache key (use plain JSON values)`,
  );
}

let hasher: IHasher | undefined;

/** Loads the BLAKE3 wasm module once; call before {@link blake3Hex}. */
export async function hashReady(): Promise<void> {
  hasher ??= await createBLAKE3();
}

/** BLAKE3 of text or bytes as hex (hashReady() must have been awaited). */
export function blake3Hex(data: string | Uint8Array, hexChars = 64): string {
  if (!hasher) throw new Error("hashReady() was not awaited");
  hasher.init();
  hasher.update(data);
  return hasher.digest("hex").slice(0, hexChars);
}
