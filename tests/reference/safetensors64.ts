// Reads a .safetensors file into float64 arrays with nothing but the file format (an 8-byte
// header length, a JSON header, raw little-endian data): the reference forward must not share
// a line of code with the loader it checks.

/** One tensor widened to float64 (int64 ids become numbers). */
export interface Tensor64 {
  shape: number[];
  data: Float64Array;
}

// bfloat16 is the top half of a float32; float16 is widened by its own bit layout.
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function widen(dtype: string, bytes: Uint8Array): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = { F64: 8, F32: 4, BF16: 2, F16: 2, I64: 8, I32: 4 }[dtype];
  if (!size) throw new Error(`reference reader: dtype ${dtype} is not handled`);
  const out = new Float64Array(bytes.byteLength / size);
  for (let i = 0; i < out.length; i++) {
    const o = i * size;
    switch (dtype) {
      case "F64":
        out[i] = view.getFloat64(o, true);
        break;
      case "F32":
        out[i] = view.getFloat32(o, true);
        break;
      case "BF16": {
        const b = new DataView(new ArrayBuffer(4));
        b.setUint16(0, 0, true);
        b.setUint16(2, view.getUint16(o, true), true);
        out[i] = b.getFloat32(0, true);
        break;
      }
      case "F16":
        out[i] = halfToNumber(view.getUint16(o, true));
        break;
      case "I64":
        out[i] = Number(view.getBigInt64(o, true));
        break;
      case "I32":
        out[i] = view.getInt32(o, true);
        break;
    }
  }
  return out;
}

/** Every tensor of a .safetensors file, widened to float64. */
export function readSafetensors64(path: string): Map<string, Tensor64> {
  const file = Deno.readFileSync(path);
  const headerLen = Number(new DataView(file.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLen)));
  const base = 8 + headerLen;
  const out = new Map<string, Tensor64>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [a, b] } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    out.set(name, { shape, data: widen(dtype, file.subarray(base + a, base + b)) });
  }
  return out;
}
