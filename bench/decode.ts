// `deno task bench decode [--model DIR]`: prefill and decode speed of a
// Llama-family model through our forward with a preallocated KV cache,
// against the PyTorch-eager forward a Python user would write (nn.Linear,
// torch.cat KV cache, repeat_interleave for grouped-query attention), on the
// same weights, the same libtorch and the same thread count.
import { parseArgs } from "node:util";
import * as torch from "../ffi/mod.ts";
import { createTinyModel, type LlamaModel, loadModel } from "../models/mod.ts";
import { pythonWithTorch, runPython } from "./python.ts";

/** Measured memory read bandwidth of the project's machines (ENVIRONMENT.md). */
const BANDWIDTH = 13.0e9;

interface Figures {
  prefill128_tps: number;
  prefill512_tps: number;
  ttft128_ms: number;
  decode_b1_tps: number;
  decode_b8_tps: number;
  peak_rss_bytes: number;
  threads: number;
}

const best = (xs: number[]) => Math.max(...xs);

function bestFigures(a: Figures | null, b: Figures): Figures {
  if (!a) return b;
  return {
    prefill128_tps: Math.max(a.prefill128_tps, b.prefill128_tps),
    prefill512_tps: Math.max(a.prefill512_tps, b.prefill512_tps),
    ttft128_ms: Math.min(a.ttft128_ms, b.ttft128_ms),
    decode_b1_tps: Math.max(a.decode_b1_tps, b.decode_b1_tps),
    decode_b8_tps: Math.max(a.decode_b8_tps, b.decode_b8_tps),
    peak_rss_bytes: Math.max(a.peak_rss_bytes, b.peak_rss_bytes),
    threads: b.threads,
  };
}

function prompt(len: number, vocab: number, salt = 0): number[] {
  return Array.from({ length: len }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));
}

function measureOurs(model: LlamaModel, reps: number, newTokens: number): Figures {
  const vocab = model.config.vocabSize;
  const prefill = (len: number) => {
    const p = prompt(len, vocab);
    using cache = model.createCache(1, len);
    const t0 = performance.now();
    using _l = model.forward([p], { cache, logits: "last" });
    return len / ((performance.now() - t0) / 1000);
  };
  const decode = (batch: number) => {
    const prompts = Array.from({ length: batch }, (_, b) => prompt(128, vocab, b));
    const r = model.generate(prompts, { maxNewTokens: newTokens, stopTokens: [] });
    return { tps: (batch * (r.steps - 1)) / (r.decodeMs / 1000), ttft: r.prefillMs };
  };
  decode(1); // warm-up: first-call allocations and thread start-up
  const p128: number[] = [],
    p512: number[] = [],
    ttft: number[] = [],
    d1: number[] = [],
    d8: number[] = [];
  for (let r = 0; r < reps; r++) {
    p128.push(prefill(128));
    p512.push(prefill(512));
    const one = decode(1);
    d1.push(one.tps);
    ttft.push(one.ttft);
    d8.push(decode(8).tps);
  }
  return {
    prefill128_tps: best(p128),
    prefill512_tps: best(p512),
    ttft128_ms: Math.min(...ttft),
    decode_b1_tps: best(d1),
    decode_b8_tps: best(d8),
    peak_rss_bytes: torch.memory.peak(),
    threads: torch.getNumThreads(),
  };
}

// The baseline: a plain PyTorch-eager Llama with a KV cache, as a Python user
// would write it. It reads the same safetensors file (pure-Python reader:
// Debian has no safetensors package).
const PY = String.raw`
import json, math, struct, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

model_dir, threads, reps, new_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
cfg = json.load(open(model_dir + "/config.json"))
DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}

def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        s, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(data[8 + n + s:8 + n + e]), dtype=DT[v["dtype"]])
        out[name] = t.reshape(v["shape"]).float()
    return out

W = load_safetensors(model_dir + "/model.safetensors")
H = cfg["hidden_size"]; NH = cfg["num_attention_heads"]; NKV = cfg.get("num_key_value_heads", NH)
HD = H // NH; I = cfg["intermediate_size"]; EPS = cfg.get("rms_norm_eps", 1e-6)
THETA = cfg.get("rope_theta", 10000.0)

def linear(name, w=None):
    w = W[name + ".weight"] if w is None else w
    bias = W.get(name + ".bias")
    m = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    m.weight.data = w
    if bias is not None:
        m.bias.data = bias
    return m

class RMSNorm(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(w)
    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + EPS))

def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)

class Layer(nn.Module):
    def __init__(self, i):
        super().__init__()
        p = "model.layers.%d." % i
        if p + "self_attn.qkv_proj.weight" in W:
            q, k, v = W[p + "self_attn.qkv_proj.weight"].split([NH * HD, NKV * HD, NKV * HD])
            g, u = W[p + "mlp.gate_up_proj.weight"].chunk(2)
            self.q_proj, self.k_proj, self.v_proj = linear("", q), linear("", k), linear("", v)
            self.gate_proj, self.up_proj = linear("", g), linear("", u)
        else:
            self.q_proj = linear(p + "self_attn.q_proj")
            self.k_proj = linear(p + "self_attn.k_proj")
            self.v_proj = linear(p + "self_attn.v_proj")
            self.gate_proj = linear(p + "mlp.gate_proj")
            self.up_proj = linear(p + "mlp.up_proj")
        self.o_proj = linear(p + "self_attn.o_proj")
        self.down_proj = linear(p + "mlp.down_proj")
        self.ln1 = RMSNorm(W[p + "input_layernorm.weight"])
        self.ln2 = RMSNorm(W[p + "post_attention_layernorm.weight"])

    def forward(self, x, cos, sin, mask, cache):
        b, t, _ = x.shape
        h = self.ln1(x)
        q = self.q_proj(h).view(b, t, NH, HD).transpose(1, 2)
        k = self.k_proj(h).view(b, t, NKV, HD).transpose(1, 2)
        v = self.v_proj(h).view(b, t, NKV, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        new_cache = (k, v)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = q @ k.transpose(-2, -1) / math.sqrt(HD)
        if mask is not None:
            att = att + mask
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, NH * HD)
        x = x + self.o_proj(y)
        h = self.ln2(x)
        x = x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, new_cache

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(W["model.embed_tokens.weight"])
        self.layers = nn.ModuleList([Layer(i) for i in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(W["model.norm.weight"])
        self.lm_head = linear("lm_head", W.get("lm_head.weight", W["model.embed_tokens.weight"]))
        self.inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2).float() / HD))

    def forward(self, ids, caches=None, start=0):
        b, t = ids.shape
        x = self.embed(ids)
        pos = torch.arange(start, start + t).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = None
        if t > 1:
            mask = torch.full((t, start + t), float("-inf")).triu(start + 1)
        new = []
        for i, layer in enumerate(self.layers):
            x, c = layer(x, cos, sin, mask, None if caches is None else caches[i])
            new.append(c)
        return self.lm_head(self.norm(x[:, -1:])), new

model = Model().eval()
V = cfg["vocab_size"]
def prompt(n, salt=0):
    return [3 + ((i * 7919 + salt * 104729) % (V - 3)) for i in range(n)]

def prefill(n):
    ids = torch.tensor([prompt(n)])
    t0 = time.perf_counter()
    model(ids)
    return n / (time.perf_counter() - t0)

def decode(batch):
    ids = torch.tensor([prompt(128, b) for b in range(batch)])
    t0 = time.perf_counter()
    logits, caches = model(ids)
    tok = logits[:, -1].argmax(-1, keepdim=True)
    tok.tolist()
    ttft = time.perf_counter() - t0
    pos = ids.shape[1]
    t1 = time.perf_counter()
    for _ in range(new_tokens - 1):
        logits, caches = model(tok, caches, pos)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        tok.tolist()
        pos += 1
    return batch * (new_tokens - 1) / (time.perf_counter() - t1), ttft * 1e3

def peak_rss():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

with torch.inference_mode():
    decode(1)
    p128, p512, d1, ttft, d8 = [], [], [], [], []
    for _ in range(reps):
        p128.append(prefill(128))
        p512.append(prefill(512))
        tps, ms = decode(1)
        d1.append(tps)
        ttft.append(ms)
        d8.append(decode(8)[0])
print(json.dumps({
    "prefill128_tps": max(p128), "prefill512_tps": max(p512), "ttft128_ms": min(ttft),
    "decode_b1_tps": max(d1), "decode_b8_tps": max(d8),
    "peak_rss_bytes": peak_rss(),
    "threads": torch.get_num_threads(),
}))
`;

const USAGE = `deno task bench decode [--model DIR] [--reps N] [--new-tokens N] [--no-python]

Without --model, writes a ~25M-parameter Llama (8 layers, hidden 512) to a
temporary folder. Prints prefill tokens/s (prompt 128 and 512), decode tokens/s
(batch 1 and 8, prompt 128), time to first token and peak memory, with the
ratio to a PyTorch-eager Python forward with a KV cache on the same weights.`;

/** Runs the decode benchmark. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      reps: { type: "string", default: "3" }, // rounds, alternating ours and python
      "new-tokens": { type: "string", default: "64" },
      "no-python": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // Both sides (and every child process) wait the same way (see setOpenMpWaiting).
  torch.setOpenMpWaiting();
  const reps = Number(values.reps);
  const newTokens = Number(values["new-tokens"]);
  if (!Number.isInteger(reps) || reps < 1 || !Number.isInteger(newTokens) || newTokens < 2) {
    throw new Error("--reps must be ≥ 1 and --new-tokens ≥ 2");
  }
  let dir = values.model;
  let tmp: string | null = null;
  if (!dir) {
    tmp = Deno.makeTempDirSync({ prefix: "lab-bench-decode-" });
    dir = `${tmp}/llama-25m`;
    createTinyModel({ out: dir, arch: "llama", preset: "25m", seed: 0 });
  }
  try {
    torch.version(); // loads libtorch, so its own memory is not counted as the load's
    torch.memory.resetPeak();
    const before = torch.memory.allocated();
    const model = loadModel(dir);
    const loadPeak = torch.memory.peak();
    const weightBytes = model.weightBytes();
    const c = model.config;
    console.log(
      `model ${dir}: ${c.architecture}, ${c.numLayers} layers, hidden ${c.hiddenSize}, ` +
        `${(model.parameterCount() / 1e6).toFixed(1)}M params, ${
          (weightBytes / 1e6).toFixed(1)
        } MB ` +
        `${model.dtype}; libtorch ${torch.version()}, ${torch.getNumThreads()} threads, ` +
        `OMP_WAIT_POLICY=${Deno.env.get("OMP_WAIT_POLICY") ?? "unset"} ` +
        `GOMP_SPINCOUNT=${Deno.env.get("GOMP_SPINCOUNT") ?? "unset"}`,
    );
    console.log(
      `load: RSS ${(before / 1e6).toFixed(0)} MB before, peak ${(loadPeak / 1e6).toFixed(0)} MB ` +
        `during: +${((loadPeak - before) / 1e6).toFixed(0)} MB for ${
          (weightBytes / 1e6).toFixed(0)
        } ` +
        `MB of weights (${((loadPeak - before) / weightBytes).toFixed(2)}× the weight bytes)`,
    );
    // Rounds alternate ours and python, so a burst of load from elsewhere on
    // the machine hits both sides; each figure is the best over the rounds.
    const py = values["no-python"] ? null : await pythonWithTorch();
    let ours: Figures | null = null;
    let theirs: Figures | null = null;
    for (let r = 0; r < reps; r++) {
      ours = bestFigures(ours, measureOurs(model, 1, newTokens));
      if (py) {
        const t = await runPython<Figures>(py, PY, [
          dir,
          String(ours.threads),
          "1",
          String(newTokens),
        ]);
        theirs = bestFigures(theirs, t);
      }
    }
    model.dispose();
    const rows: [string, keyof Figures, string, boolean][] = [
      ["prefill, prompt 128", "prefill128_tps", "tok/s", true],
      ["prefill, prompt 512", "prefill512_tps", "tok/s", true],
      ["time to first token (128)", "ttft128_ms", "ms", false],
      ["decode, batch 1", "decode_b1_tps", "tok/s", true],
      ["decode, batch 8", "decode_b8_tps", "tok/s", true],
      ["peak RSS", "peak_rss_bytes", "MB", false],
    ];
    console.log(
      `\n${"".padEnd(26)} ${"ours".padStart(10)} ${
        "python".padStart(10)
      }   speed-up (ours vs python)`,
    );
    for (const [name, key, unit, higherIsBetter] of rows) {
      const scale = unit === "MB" ? 1e-6 : 1;
      const o = ours![key] * scale;
      const t = theirs ? theirs[key] * scale : undefined;
      const ratio = t === undefined ? "n/a" : (higherIsBetter ? o / t : t / o).toFixed(2) + "×";
      console.log(
        `${name.padEnd(26)} ${o.toFixed(1).padStart(10)} ${
          t === undefined ? "n/a".padStart(10) : t.toFixed(1).padStart(10)
        } ${unit.padEnd(5)} ${ratio}`,
      );
    }
    const limit = BANDWIDTH / weightBytes;
    console.log(
      `\ndecode batch 1 is ${
        (100 * ours!.decode_b1_tps / limit).toFixed(0)
      }% of the memory-bandwidth ` +
        `limit (${limit.toFixed(0)} tok/s = 13.0 GB/s ÷ ${
          (weightBytes / 1e6).toFixed(1)
        } MB of weights)`,
    );
    if (!theirs) {
      console.log("(no Python baseline: install Debian's python3-torch for /usr/bin/python3)");
    }
    console.log("target: decode batch 1 ≥ 1.5× python; no row below 1.0×");
  } finally {
    if (tmp) Deno.removeSync(tmp, { recursive: true });
  }
}
