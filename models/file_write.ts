// Writing model files: every byte of a buffer, and a whole file through a temporary name that
// is renamed into place only when complete, so a failed or interrupted write leaves no partial
// file under the real name.

/** Writes all of `buf` (a single writeSync may write less). */
export function writeAll(file: Deno.FsFile, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.byteLength) done += file.writeSync(buf.subarray(done));
}

/**
 * Runs `write` on a fresh temporary file beside `path`, then renames it to `path`; on an error
 * the temporary file is removed and the error rethrown. Returns what `write` returns.
 */
export function writeFileAtomically<T>(path: string, write: (file: Deno.FsFile) => T): T {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  let result: T;
  try {
    result = write(file);
  } catch (e) {
    file.close();
    Deno.removeSync(tmp);
    throw e;
  }
  file.close();
  Deno.renameSync(tmp, path);
  return result;
}
