/**
 * The one glob dialect of the lab, used by `--only` / `--force` / `lab why` over stage names,
 * and by `keep` / `targetModules` over module names: `*` matches any run of characters (dots
 * included), `?` matches one character, everything else stands for itself. It lives at the
 * root, importing nothing, so that the engine and the model code share it without either
 * importing the other.
 */

/** A pattern in the lab's glob dialect as an anchored RegExp that must match the whole text. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${globBody(glob)}$`);
}

/**
 * A module-name matcher: the glob may match the whole name or any dotted suffix of it (the
 * rule PEFT uses for short names), so "q_proj" matches "model.layers.3.self_attn.q_proj" and
 * "model.layers.0.*" matches layer 0 only.
 */
export function moduleGlob(glob: string): (name: string) => boolean {
  const re = new RegExp(`^(?:.*\\.)?${globBody(glob)}$`);
  return (name) => re.test(name);
}

/** Whether `text` holds a glob wildcard (`*` or `?`). */
export function hasWildcard(text: string): boolean {
  return /[*?]/.test(text);
}

function globBody(glob: string): string {
  return glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
}
