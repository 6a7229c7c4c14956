// What the host has to spare (memory, disk) and a way to keep read-once files out of the page
// cache: big loads and saves check their need first, so running short is a plain error naming
// the need instead of the kernel's OOM killer or a half-written file.
import { LabError } from "../errors.ts";

/** Not enough memory or disk for an operation; the message names the need and the fix. */
export class ResourceError extends LabError {
  /** Creates the error; the message names what is needed and how to free or add it. */
  constructor(message: string) {
    super(message);
    this.name = "ResourceError";
  }
}

/** Bytes as gigabytes with two decimals, for messages. */
export function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** Parses a byte count: a plain number, or with a K/M/G/T suffix (powers of 1024), e.g. "8G". */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new RangeError(`'${text}' is not a byte count (e.g. 8G, 512M, 1000000)`);
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase()]!;
  return Math.floor(Number(m[1]) * scale);
}

function procField(file: string, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(Deno.readTextFileSync(file));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** This process's resident set size in bytes (VmRSS), or null where /proc is absent. */
export function residentBytes(): number | null {
  return procField("/proc/self/status", "VmRSS");
}

/** This process's peak resident set size in bytes (VmHWM), or null where /proc is absent. */
export function peakResidentBytes(): number | null {
  return procField("/proc/self/status", "VmHWM");
}

/** Memory this process may still take, and where that figure comes from. */
export interface MemoryRoom {
  bytes: number;
  source: string;
}

/**
 * Memory available to this process: MemAvailable from /proc/meminfo, capped by
 * $LAB_MEMORY_BUDGET (a peak-RSS budget for the process, e.g. "8G") less what it holds now.
 * Null when neither is known.
 */
export function memoryRoom(): MemoryRoom | null {
  const avail = procField("/proc/meminfo", "MemAvailable");
  let room: MemoryRoom | null = avail === null
    ? null
    : { bytes: avail, source: "MemAvailable in /proc/meminfo" };
  const budget = Deno.env.get("LAB_MEMORY_BUDGET");
  if (budget) {
    const rss = residentBytes() ?? 0;
    const left = Math.max(0, parseBytes(budget) - rss);
    if (!room || left < room.bytes) {
      room = { bytes: left, source: `LAB_MEMORY_BUDGET=${budget} less the ${gb(rss)} held now` };
    }
  }
  return room;
}

/** Throws a ResourceError when `need` bytes of memory exceed what is available. */
export function requireMemory(need: number, what: string, fix: string): void {
  const room = memoryRoom();
  if (!room || need <= room.bytes) return;
  throw new ResourceError(
    `${what} needs about ${gb(need)} of memory, but only ${gb(room.bytes)} is available ` +
      `(${room.source}). ${fix}`,
  );
}

// libc, for statvfs and posix_fadvise (Deno has neither); null off glibc Linux.
const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
} as const;
type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];
let libc: Libc | null | undefined;

function openLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols : null;
  } catch {
    libc = null;
  }
  return libc;
}

const cString = (s: string) => new TextEncoder().encode(s + "\0");

/** Free bytes for an unprivileged writer on the file system holding `path` (or its nearest existing parent); null if unknown. */
export function freeDiskBytes(path: string): number | null {
  const c = openLibc();
  if (!c) return null;
  let p = path;
  for (;;) {
    try {
      Deno.statSync(p);
      break;
    } catch {
      const up = p.replace(/\/+[^/]*\/*$/, "");
      if (up === p || up === "") {
        p = "/";
        break;
      }
      p = up;
    }
  }
  // struct statvfs on 64-bit glibc: f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, … (8 bytes each).
  const buf = new BigUint64Array(32);
  if (c.statvfs(cString(p), buf) !== 0) return null;
  return Number(buf[1] * buf[4]);
}

/** Throws a ResourceError when `need` bytes will not fit on the disk holding `dir`. */
export function requireDisk(need: number, dir: string, what: string, fix: string): void {
  const free = freeDiskBytes(dir);
  if (free === null || need <= free) return;
  throw new ResourceError(
    `${what} needs about ${gb(need)} of disk in ${dir}, but only ${gb(free)} is free. ${fix}`,
  );
}

const POSIX_FADV_DONTNEED = 4;

/**
 * Drops a file's cached pages after they are read: reading a checkpoint larger than memory
 * once should not push everything else out of the page cache. Null where unsupported.
 */
export interface PageCacheDropper {
  /** Drops the cached pages of bytes [offset, offset + length). */
  drop(offset: number, length: number): void;
  close(): void;
}

/** A PageCacheDropper for `path`, or null where posix_fadvise is unavailable. */
export function pageCacheDropper(path: string): PageCacheDropper | null {
  const c = openLibc();
  if (!c) return null;
  // Advice applies to the file's pages, whichever descriptor gives it.
  let fd = c.open(cString(path), 0);
  if (fd < 0) return null;
  return {
    drop(offset, length) {
      if (fd >= 0) c.posix_fadvise(fd, BigInt(offset), BigInt(length), POSIX_FADV_DONTNEED);
    },
    close() {
      if (fd >= 0) c.close(fd);
      fd = -1;
    },
  };
}
