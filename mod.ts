// LLM Efficiency Lab: the public API.
export * as torch from "./ffi/mod.ts";
export * from "./models/mod.ts";
export * from "./engine/mod.ts";
export * from "./stages/mod.ts";
