// The C structs libllama takes and returns by value, laid out field by field from the pinned
// llama.h (see locate.ts for the version); tests/llama_cpp_ffi.test.ts guards them.

/** A C field type as the x86-64 System V ABI lays it out. */
export type CField = "i32" | "u32" | "f32" | "bool" | "i8" | "ptr" | "usize";

/** A struct's fields in declaration order. */
export type CFields = readonly (readonly [string, CField])[];

const SIZE: Record<CField, number> = { i32: 4, u32: 4, f32: 4, bool: 1, i8: 1, ptr: 8, usize: 8 };
const NATIVE: Record<CField, Deno.NativeType> = {
  i32: "i32",
  u32: "u32",
  f32: "f32",
  bool: "bool",
  i8: "i8",
  ptr: "pointer",
  usize: "usize",
};

/** One struct's layout: byte offsets and size with C alignment, and its Deno FFI type. */
export class CStruct {
  readonly offsets = new Map<string, [number, CField]>();
  readonly size: number;
  readonly native: Deno.NativeStructType;

  constructor(readonly name: string, fields: CFields) {
    let at = 0;
    let align = 1;
    for (const [f, t] of fields) {
      const s = SIZE[t];
      at = Math.ceil(at / s) * s;
      this.offsets.set(f, [at, t]);
      at += s;
      align = Math.max(align, s);
    }
    this.size = Math.ceil(at / align) * align;
    this.native = { struct: fields.map(([, t]) => NATIVE[t]) };
  }

  #field(f: string): [number, CField] {
    const o = this.offsets.get(f);
    if (!o) throw new Error(`${this.name} has no field ${f}`);
    return o;
  }

  /** Reads field `f` of a struct held in `buf` (pointers as bigint addresses). */
  get(buf: Uint8Array, f: string): number | boolean | bigint {
    const [at, t] = this.#field(f);
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    switch (t) {
      case "i32":
        return v.getInt32(at, true);
      case "u32":
        return v.getUint32(at, true);
      case "f32":
        return v.getFloat32(at, true);
      case "bool":
        return v.getUint8(at) !== 0;
      case "i8":
        return v.getInt8(at);
      case "ptr":
      case "usize":
        return v.getBigUint64(at, true);
    }
  }

  /** Writes field `f` of a struct held in `buf`. */
  set(buf: Uint8Array, f: string, value: number | boolean | bigint): void {
    const [at, t] = this.#field(f);
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    switch (t) {
      case "i32":
        return v.setInt32(at, Number(value), true);
      case "u32":
        return v.setUint32(at, Number(value), true);
      case "f32":
        return v.setFloat32(at, Number(value), true);
      case "bool":
        return v.setUint8(at, value ? 1 : 0);
      case "i8":
        return v.setInt8(at, Number(value));
      case "ptr":
      case "usize":
        return v.setBigUint64(at, BigInt(value), true);
    }
  }
}

/** `struct llama_model_params`. */
export const MODEL_PARAMS = new CStruct("llama_model_params", [
  ["devices", "ptr"],
  ["tensor_buft_overrides", "ptr"],
  ["n_gpu_layers", "i32"],
  ["split_mode", "i32"],
  ["load_mode", "i32"],
  ["lazy_mode", "i32"],
  ["main_gpu", "i32"],
  ["tensor_split", "ptr"],
  ["progress_callback", "ptr"],
  ["progress_callback_user_data", "ptr"],
  ["kv_overrides", "ptr"],
  ["vocab_only", "bool"],
  ["check_tensors", "bool"],
  ["use_extra_bufts", "bool"],
  ["no_host", "bool"],
  ["no_alloc", "bool"],
  ["load_mtp", "bool"],
]);

/** `struct llama_context_params`. */
export const CONTEXT_PARAMS = new CStruct("llama_context_params", [
  ["n_ctx", "u32"],
  ["n_batch", "u32"],
  ["n_ubatch", "u32"],
  ["n_seq_max", "u32"],
  ["n_rs_seq", "u32"],
  ["n_outputs_max", "u32"],
  ["n_outputs_max_per_seq", "u32"],
  ["n_threads", "i32"],
  ["n_threads_batch", "i32"],
  ["ctx_type", "i32"],
  ["rope_scaling_type", "i32"],
  ["pooling_type", "i32"],
  ["attention_type", "i32"],
  ["flash_attn_type", "i32"],
  ["rope_freq_base", "f32"],
  ["rope_freq_scale", "f32"],
  ["yarn_ext_factor", "f32"],
  ["yarn_attn_factor", "f32"],
  ["yarn_beta_fast", "f32"],
  ["yarn_beta_slow", "f32"],
  ["yarn_orig_ctx", "u32"],
  ["defrag_thold", "f32"],
  ["cb_eval", "ptr"],
  ["cb_eval_user_data", "ptr"],
  ["type_k", "i32"],
  ["type_v", "i32"],
  ["abort_callback", "ptr"],
  ["abort_callback_data", "ptr"],
  ["embeddings", "bool"],
  ["offload_kqv", "bool"],
  ["no_perf", "bool"],
  ["op_offload", "bool"],
  ["swa_full", "bool"],
  ["kv_unified", "bool"],
  ["samplers", "ptr"],
  ["n_samplers", "usize"],
  ["ctx_other", "ptr"],
]);

/** `struct llama_model_quantize_params`. */
export const QUANTIZE_PARAMS = new CStruct("llama_model_quantize_params", [
  ["nthread", "i32"],
  ["ftype", "i32"],
  ["output_tensor_type", "i32"],
  ["token_embedding_type", "i32"],
  ["allow_requantize", "bool"],
  ["quantize_output_tensor", "bool"],
  ["only_copy", "bool"],
  ["pure", "bool"],
  ["keep_split", "bool"],
  ["dry_run", "bool"],
  ["imatrix", "ptr"],
  ["kv_overrides", "ptr"],
  ["tt_overrides", "ptr"],
  ["prune_layers", "ptr"],
  ["max_buf_size", "usize"],
]);

/** `struct llama_batch`. */
export const BATCH = new CStruct("llama_batch", [
  ["n_tokens", "i32"],
  ["token", "ptr"],
  ["embd", "ptr"],
  ["pos", "ptr"],
  ["n_seq_id", "ptr"],
  ["seq_id", "ptr"],
  ["logits", "ptr"],
]);
