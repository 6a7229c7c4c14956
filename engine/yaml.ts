// Reading a YAML config file for a pipeline, with errors that name the file.
import { parse } from "yaml";
import { resolve } from "node:path";
import { LabError } from "./errors.ts";

/**
 * Reads a YAML config file, or the section at `path` ("lora" or "training.lora"), and merges
 * `overrides` over it (shallowly). The content, not the file name, becomes part of the params
 * and so of the cache key.
 */
export function fromYaml<T = Record<string, unknown>>(
  file: string,
  path?: string,
  overrides?: Record<string, unknown>,
): T {
  const full = resolve(file);
  let text: string;
  try {
    text = Deno.readTextFileSync(full);
  } catch {
    throw new LabError(`config file not found: ${file} (looked at ${full})`);
  }
  let value: unknown;
  try {
    value = parse(text);
  } catch (e) {
    throw new LabError(`config file ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (path) {
    for (const part of path.split(".")) {
      if (typeof value !== "object" || value === null || !(part in value)) {
        throw new LabError(`config file ${file} has no section "${path}"`);
      }
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (overrides) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new LabError(
        `config ${file}${
          path ? ` section "${path}"` : ""
        } is not a mapping; cannot apply overrides`,
      );
    }
    value = { ...value, ...overrides };
  }
  return value as T;
}
