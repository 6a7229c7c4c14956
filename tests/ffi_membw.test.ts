// The memory read bandwidth probe: answers in bytes/s on both code paths, refuses bad input.
import assert from "node:assert/strict";
import { TorchError } from "../ffi/mod.ts";
import { readBandwidth } from "../ffi/membw.ts";

const SMALL = 8 << 20; // enough to exercise slicing across threads; tests never judge speed

function cpuHasAvx2(): boolean {
  return /^flags\s*:.*\bavx2\b/m.test(Deno.readTextFileSync("/proc/cpuinfo"));
}

Deno.test("readBandwidth reports a finite positive rate with 1 and 3 threads", () => {
  for (const threads of [1, 3]) {
    const r = readBandwidth({ bytes: SMALL, threads, rounds: 2 });
    assert.ok(Number.isFinite(r.bytesPerS) && r.bytesPerS > 0, `${threads}: ${r.bytesPerS}`);
    assert.deepEqual([r.bytes, r.threads, r.rounds], [SMALL, threads, 2]);
    assert.equal(r.avx2, cpuHasAvx2());
  }
});

Deno.test("LAB_MEMBW_SCALAR=1 forces the scalar loop, which still measures", () => {
  Deno.env.set("LAB_MEMBW_SCALAR", "1");
  try {
    const r = readBandwidth({ bytes: SMALL + 100, threads: 2, rounds: 1 });
    assert.equal(r.avx2, false);
    assert.ok(r.bytesPerS > 0);
  } finally {
    Deno.env.delete("LAB_MEMBW_SCALAR");
  }
});

Deno.test("readBandwidth refuses a tiny buffer, no threads or no rounds with the reason", () => {
  assert.throws(() => readBandwidth({ bytes: 100 }), (e) => {
    assert.ok(e instanceof TorchError);
    assert.match(e.message, /bytes must be at least 4096/);
    return true;
  });
  assert.throws(() => readBandwidth({ bytes: SMALL, threads: 0 }), /threads must be 1\.\.1024/);
  assert.throws(() => readBandwidth({ bytes: SMALL, rounds: 0 }), /rounds must be at least 1/);
});
