// The token-embedding table: a dense tensor, or a packed table (the quantized or narrowed
// weight of a projection) from which a lookup dequantizes only the rows it reads. A tied
// model holds one packed table that is both its embedding and its lm_head.
import { type DType, embedding, ITEM_SIZE, Tensor } from "../ffi/mod.ts";
import type { LinearLayer } from "./linear.ts";

/** A projection whose weight rows can be read as embeddings. */
export interface PackedTable extends LinearLayer {
  /** Rows `ids` of the weight as float32 `[...ids.shape, inFeatures]`. */
  rows(ids: Tensor): Tensor;
}

/** What ModelWeights.embedTokens holds. */
export type EmbeddingTable = Tensor | PackedTable;

/** Whether the table is packed rather than a dense tensor. */
export function isPacked(table: EmbeddingTable): table is PackedTable {
  return !(table instanceof Tensor);
}

/** Embeddings of `ids` in `dtype`. */
export function lookupEmbedding(table: EmbeddingTable, ids: Tensor, dtype: DType): Tensor {
  if (!isPacked(table)) return embedding(table, ids);
  const rows = table.rows(ids);
  if (rows.dtype === dtype) return rows;
  using f = rows;
  return f.to(dtype);
}

/** Bytes the table occupies. */
export function tableBytes(table: EmbeddingTable): number {
  return isPacked(table) ? table.weightBytes() : table.numel * ITEM_SIZE[table.dtype];
}

/** Parameters the table holds. */
export function tableParams(table: EmbeddingTable): number {
  return isPacked(table) ? table.parameterCount() : table.numel;
}
