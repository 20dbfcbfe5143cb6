"""The model of `cgrad train gpt` in PyTorch (nanoGPT's architecture: learned positions,
pre-norm blocks, exact GELU MLP, tied output projection), the same data pipeline (bytes,
vocabulary of the bytes that occur, 90/10 split, random windows), AdamW with decay on 2-d
weights only (betas 0.9/0.95), linear warm-up then cosine decay to lr/10, clipping at
norm 1. For the baselines in bench/RESULTS.md:
    /usr/bin/python3 bench/gpt_torch.py [--steps N] [--batch B] [--block T] [--layers L]
        [--heads H] [--embd C] [--lr LR] [--warmup N] [--eval-every N] [--eval-batches N]
        [--data FILE] [--threads N] [--time-steps N]
--time-steps N: only time N training steps (median ms/step after the first, wall and process
CPU time) and exit. --amp bf16: the forward under torch.autocast (bfloat16 matmuls).
--sample CKPT [--tokens N]: load a `cgrad train gpt` checkpoint (its configuration and
float32 weights) and sample N tokens with a KV cache (one token per forward, float32,
temperature 0.8, torch.multinomial), twice in one process: the first pass (cold: the
process's first forwards) and a second (warm); tokens/s and CPU ms/token of each."""
import argparse, glob, json, math, os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser()
for name, default in [("steps", 2000), ("batch", 16), ("block", 128), ("layers", 4), ("heads", 4), ("embd", 128), ("warmup", 100),
                      ("eval-every", 200), ("eval-batches", 8), ("threads", 2), ("time-steps", 0), ("seed", 1337)]:
    p.add_argument("--" + name, type=int, default=default)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--data", default=None)
p.add_argument("--amp", default=None, choices=["bf16"], help="torch.autocast to bfloat16 (CPU)")
p.add_argument("--sample", default=None, help="a cgrad GPT checkpoint to sample from")
p.add_argument("--tokens", type=int, default=100)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
if a.data:
    text = open(a.data, "rb").read()
else:
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(f) and os.path.isfile(f) and not os.path.islink(f))
    text = b"".join(open(f, "rb").read() for f in files)
vocab = sorted(set(text))
lut = np.zeros(256, np.int64)
lut[vocab] = np.arange(len(vocab))
data = lut[np.frombuffer(text, np.uint8)]
n = len(data) * 9 // 10
train, val = data[:n], data[n:]
V, T, C, L, H = len(vocab), a.block, a.embd, a.layers, a.heads

class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln_1, s.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        s.c_attn, s.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.c_fc, s.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        s.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())
    def forward(s, x):
        B, t, _ = x.shape
        q, k, v = s.c_attn(s.ln_1(x)).split(C, 2)
        q, k, v = (z.view(B, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        y = torch.softmax(att.masked_fill(~s.mask[:t, :t], float("-inf")), -1) @ v
        x = x + s.c_proj(y.transpose(1, 2).reshape(B, t, C))
        return x + s.mlp_proj(F.gelu(s.c_fc(s.ln_2(x))))

class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        s.h = nn.ModuleList(Block() for _ in range(L))
        s.ln_f = nn.LayerNorm(C)
        for name, prm in s.named_parameters():
            if prm.dim() == 2: nn.init.normal_(prm, 0, 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight") else 0.02)
            elif name.endswith(".bias"): nn.init.zeros_(prm)
    def forward(s, idx, y=None):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for b in s.h: x = b(x)
        logits = s.ln_f(x) @ s.wte.weight.t()
        return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))

def load_cgrad(path):
    """A safetensors file's tensors as numpy arrays (8-byte header length, JSON header, data)."""
    raw = open(path, "rb").read()
    hl = int.from_bytes(raw[:8], "little"); head = json.loads(raw[8:8 + hl]); base = 8 + hl
    dts = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}
    return {k: np.frombuffer(raw[base + v["data_offsets"][0]:base + v["data_offsets"][1]], dts[v["dtype"]]).reshape(v["shape"])
            for k, v in head.items() if k != "__metadata__"}

if a.sample:
    w = load_cgrad(a.sample)
    V, T, L, H, C = (int(z) for z in w["gpt.config"][:5])
    m = GPT()
    ren = {"attn.c_attn": "c_attn", "attn.c_proj": "c_proj", "mlp.c_fc": "c_fc", "mlp.c_proj": "mlp_proj"}
    sd = {}
    for k, v in w.items():
        if k.startswith("gpt."): continue
        k = k.replace("transformer.", "")
        for x, y in ren.items(): k = k.replace(x, y)
        sd[k] = torch.from_numpy(v.copy())
    missing = m.load_state_dict(sd, strict=False)
    assert not missing.unexpected_keys and all(k.endswith("mask") for k in missing.missing_keys), missing
    m.eval()
    D = C // H
    def run(n):
        """n tokens from a new line, one forward of one token each, keys and values cached."""
        kc = [torch.zeros(1, H, T, D) for _ in range(L)]; vc = [torch.zeros(1, H, T, D) for _ in range(L)]
        g = torch.Generator().manual_seed(1)
        tok, out, pos = torch.zeros(1, 1, dtype=torch.long), [], 0
        t0, c0 = time.time(), time.process_time()
        with torch.no_grad():
            for _ in range(n):
                if pos == T: pos = 0  # the window is full: start again (cgrad keeps half; the cost per token is the same order)
                x = m.wte(tok) + m.wpe.weight[pos]
                for l, b in enumerate(m.h):
                    q, k, v = b.c_attn(b.ln_1(x)).split(C, 2)
                    q, k, v = (z.view(1, 1, H, D).transpose(1, 2) for z in (q, k, v))
                    kc[l][:, :, pos] = k[:, :, 0]; vc[l][:, :, pos] = v[:, :, 0]
                    att = torch.softmax((q @ kc[l][:, :, :pos + 1].transpose(-2, -1)) / math.sqrt(D), -1)
                    x = x + b.c_proj((att @ vc[l][:, :, :pos + 1]).transpose(1, 2).reshape(1, 1, C))
                    x = x + b.mlp_proj(F.gelu(b.c_fc(b.ln_2(x))))
                logits = m.ln_f(x) @ m.wte.weight.t()
                tok = torch.multinomial(torch.softmax(logits[0, -1] / 0.8, -1), 1, generator=g).view(1, 1)
                out.append(int(tok)); pos += 1
        return time.time() - t0, time.process_time() - c0
    for name in ("cold", "warm"):
        el, cpu = run(a.tokens)
        print(f"pytorch sample {name}: {a.tokens} tokens in {el:.3f} s ({a.tokens / el:.1f} tokens/s, KV cache); cpu: {1e3 * cpu / a.tokens:.2f} ms/token")
    sys.exit(0)

m = GPT()
dec = [q for q in m.parameters() if q.dim() == 2]
nodec = [q for q in m.parameters() if q.dim() < 2]
opt = torch.optim.AdamW([{"params": dec, "weight_decay": 0.1}, {"params": nodec, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
rng = np.random.default_rng(a.seed)
def batch(d, r):
    o = r.integers(0, len(d) - T - 1, a.batch)
    x = np.stack([d[i:i + T] for i in o]); y = np.stack([d[i + 1:i + T + 1] for i in o])
    return torch.from_numpy(x), torch.from_numpy(y)
def lr_at(step):
    if step <= a.warmup: return a.lr * step / max(a.warmup, 1)
    prog = min(1.0, (step - a.warmup) / max(a.steps - a.warmup, 1))
    return a.lr / 10 + 0.5 * (a.lr - a.lr / 10) * (1 + math.cos(math.pi * prog))
def evaluate():
    r = np.random.default_rng(a.seed ^ 0xE7A1)
    with torch.no_grad():
        return sum(m(*batch(val, r)).item() for _ in range(a.eval_batches)) / a.eval_batches
steps = a.time_steps or a.steps
times, cpus = [], []
print(f"pytorch GPT: {sum(q.numel() for q in m.parameters()) / 1e6:.2f}M parameters, vocabulary {V}", file=sys.stderr)
for step in range(1, steps + 1):
    for g in opt.param_groups: g["lr"] = lr_at(step)
    x, y = batch(train, rng)
    t0, c0 = time.time(), time.process_time()
    if a.amp:
        with torch.autocast("cpu", dtype=torch.bfloat16): loss = m(x, y)
    else: loss = m(x, y)
    opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    l = loss.item()
    times.append(time.time() - t0); cpus.append(time.process_time() - c0)
    if not a.time_steps and (step % a.eval_every == 0 or step == a.steps):
        print(f"step {step} train loss {l:.4f} val loss {evaluate():.4f}", flush=True)
med = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
cmed = sorted(cpus[1:])[len(cpus[1:]) // 2] if len(cpus) > 1 else cpus[0]
print(f"pytorch{' ' + a.amp if a.amp else ''}: {1e3 * med:.1f} ms/step (median), {a.batch * T / med:.0f} tokens/s; cpu: {1e3 * cmed:.0f} ms/step (process CPU time, median)")
