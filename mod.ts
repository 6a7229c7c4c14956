/**
 * LLM Efficiency Lab: write experiment pipelines (load → quantize → fine-tune → profile →
 * evaluate → analyze) from the built-in stages or your own, and run them as cached DAGs whose
 * results land in DuckDB. The torch binding is the `./torch` export (ffi/mod.ts), the model
 * code the `./models` export (models/mod.ts).
 * @module
 */
export * from "./engine/mod.ts";
export * from "./stages/mod.ts";
