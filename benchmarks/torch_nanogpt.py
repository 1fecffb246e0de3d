"""nanoGPT's GPT in PyTorch, the reference side of the character-level transformer comparison.

The model follows karpathy/nanoGPT model.py (the version the shakespeare_char
README trains): token and position embeddings, pre-LayerNorm blocks of causal
self-attention (`F.scaled_dot_product_attention(is_causal=True)`) and a GELU
MLP, a final LayerNorm and an LM head tied to the token embedding; LayerNorm
with optional bias; weights N(0, 0.02), residual projections (`c_proj`)
N(0, 0.02 / sqrt(2 n_layer)); AdamW with weight decay on >= 2-D parameters
only. `train_step` is the body of nanoGPT's train.py loop without gradient
accumulation, and `load_flax_params` copies a flax parameter dict with the
same module names into the model, so both frameworks can start from identical
weights.

Command:  python benchmarks/torch_nanogpt.py   (a self-check: the loss at init
          is about ln(vocab) = 4.17 for 65 characters, and a flax-layout copy
          of the weights reproduces it)
"""
import inspect
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
  block_size: int = 1024
  vocab_size: int = 50304   # GPT-2's 50257 padded up to a multiple of 64
  n_layer: int = 12
  n_head: int = 12
  n_embd: int = 768
  dropout: float = 0.0
  bias: bool = True         # bias in Linears and LayerNorms, like GPT-2


# config/train_shakespeare_char.py ("baby GPT", 10.65M parameters); bias=False is train.py's
# default. Its training settings: batch 64, lr 1e-3, betas (0.9, 0.99), weight decay 0.1,
# grad_clip 1.0.
SHAKESPEARE_CHAR = dict(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384,
                        dropout=0.2, bias=False)


class LayerNorm(nn.Module):
  """LayerNorm with an optional bias (eps 1e-5); f32[..., ndim] -> f32[..., ndim]."""

  def __init__(self, ndim: int, bias: bool):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(ndim))
    self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

  def forward(self, x):
    return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
  """Multi-head causal self-attention: f32[B, T, C] -> f32[B, T, C]."""

  def __init__(self, config: GPTConfig):
    super().__init__()
    assert config.n_embd % config.n_head == 0
    self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
    self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
    # attn_dropout is only used by nanoGPT's non-flash path; kept so the modules match.
    self.attn_dropout = nn.Dropout(config.dropout)
    self.resid_dropout = nn.Dropout(config.dropout)
    self.n_head = config.n_head
    self.n_embd = config.n_embd
    self.dropout = config.dropout

  def forward(self, x):
    b, t, c = x.size()
    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
    # (B, T, C) -> (B, nh, T, hs)
    q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                       dropout_p=self.dropout if self.training else 0,
                                       is_causal=True)
    y = y.transpose(1, 2).contiguous().view(b, t, c)
    return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
  """C -> 4C -> GELU -> C with dropout: f32[B, T, C] -> f32[B, T, C]."""

  def __init__(self, config: GPTConfig):
    super().__init__()
    self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
    self.gelu = nn.GELU()
    self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
    self.dropout = nn.Dropout(config.dropout)

  def forward(self, x):
    return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
  """Pre-LayerNorm transformer block."""

  def __init__(self, config: GPTConfig):
    super().__init__()
    self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
    self.attn = CausalSelfAttention(config)
    self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
    self.mlp = MLP(config)

  def forward(self, x):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
  """nanoGPT's GPT: i64[B, T] token ids -> (logits, loss)."""

  def __init__(self, config: GPTConfig):
    super().__init__()
    self.config = config
    self.transformer = nn.ModuleDict(dict(
        wte=nn.Embedding(config.vocab_size, config.n_embd),
        wpe=nn.Embedding(config.block_size, config.n_embd),
        drop=nn.Dropout(config.dropout),
        h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
        ln_f=LayerNorm(config.n_embd, bias=config.bias),
    ))
    self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
    self.transformer.wte.weight = self.lm_head.weight   # weight tying
    self.apply(self._init_weights)
    # GPT-2's scaled init of the projections that write into the residual stream.
    for name, p in self.named_parameters():
      if name.endswith("c_proj.weight"):
        torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

  def get_num_params(self, non_embedding: bool = True) -> int:
    """Parameter count; position embeddings excluded by default (wte counts via the head)."""
    n = sum(p.numel() for p in self.parameters())
    if non_embedding:
      n -= self.transformer.wpe.weight.numel()
    return n

  def _init_weights(self, module):
    if isinstance(module, nn.Linear):
      torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
      if module.bias is not None:
        torch.nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
      torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

  def forward(self, idx, targets=None):
    """idx, targets: i64[B, T] with T <= block_size (targets -1 = ignored).

    Returns (logits f32[B, T, V], mean cross-entropy in nats) with targets, else
    (logits f32[B, 1, V] at the last position, None), as nanoGPT does.
    """
    _, t = idx.size()
    assert t <= self.config.block_size, f"sequence of {t} > block size {self.config.block_size}"
    pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
    x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
    for block in self.transformer.h:
      x = block(x)
    x = self.transformer.ln_f(x)
    if targets is not None:
      logits = self.lm_head(x)
      loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
      return logits, loss
    return self.lm_head(x[:, [-1], :]), None

  def configure_optimizers(self, weight_decay: float, learning_rate: float,
                           betas: tuple[float, float], device_type: str):
    """AdamW decaying matmul weights and embeddings (>= 2-D), not biases or LayerNorms."""
    params = [p for p in self.parameters() if p.requires_grad]   # the tied weight once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # The fused CUDA kernel when this torch has it; on CPU the plain (non-fused) AdamW.
    has_fused = "fused" in inspect.signature(torch.optim.AdamW).parameters
    extra = dict(fused=device_type == "cuda") if has_fused else dict()
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)


def train_step(model: GPT, optimizer, x, y, grad_clip: float = 1.0, amp_dtype=None):
  """One optimizer step on a batch: forward, cross-entropy, backward, clip, step, zero_grad.

  Args:
    model: a GPT in training mode.
    optimizer: e.g. from `model.configure_optimizers`.
    x, y: i64[B, T] inputs and next-token targets on the model's device.
    grad_clip: max global gradient norm; 0 skips clipping.
    amp_dtype: None for f32; torch.bfloat16 runs the forward under autocast, as
      train.py does on GPUs that support it.

  Returns:
    The loss, a detached f32[] tensor still on the device (no host sync here).
  """
  if amp_dtype is None:
    _, loss = model(x, y)
  else:
    with torch.autocast(device_type=x.device.type, dtype=amp_dtype):
      _, loss = model(x, y)
  loss.backward()
  if grad_clip:
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
  optimizer.step()
  optimizer.zero_grad(set_to_none=True)
  return loss.detach()


def load_flax_params(model: GPT, params: Mapping[str, Any]) -> None:
  """Copies a flax parameter dict with the same module names into `model`, in place.

  Layout: `wte`/`wpe` {"embedding": f32[V or block_size, D]}; `h_{i}` with `ln_1`,
  `ln_2` {"scale": f32[D], "bias"}, `attn` {`c_attn`, `c_proj`}, `mlp` {`c_fc`,
  `c_proj`}, each Dense {"kernel": f32[in, out], "bias": f32[out]} (kernels are
  transposed into torch's [out, in]); `ln_f`. Biases are read only when the
  model has them. The LM head is the tied `wte`. A top-level {"params": ...}
  wrapper is accepted. Raises KeyError on a missing entry, ValueError on a
  shape mismatch or an unused top-level entry.
  """
  if "params" in params and "wte" not in params:
    params = params["params"]
  cfg = model.config
  used = {"wte", "wpe", "ln_f"} | {f"h_{i}" for i in range(cfg.n_layer)}
  extra = set(params) - used
  if extra:
    raise ValueError(f"flax params have entries the torch model lacks: {sorted(extra)}")

  def put(dst: torch.Tensor, src, name: str, transpose: bool = False):
    a = np.asarray(src, np.float32)
    a = a.T if transpose else a
    if a.shape != tuple(dst.shape):
      raise ValueError(f"{name}: flax shape {a.shape} vs torch {tuple(dst.shape)}")
    dst.copy_(torch.from_numpy(np.ascontiguousarray(a)))

  def dense(mod: nn.Linear, p, name: str):
    put(mod.weight, p["kernel"], f"{name}.kernel", transpose=True)
    if mod.bias is not None:
      put(mod.bias, p["bias"], f"{name}.bias")

  def norm(mod: LayerNorm, p, name: str):
    put(mod.weight, p["scale"], f"{name}.scale")
    if mod.bias is not None:
      put(mod.bias, p["bias"], f"{name}.bias")

  t = model.transformer
  with torch.no_grad():
    put(t.wte.weight, params["wte"]["embedding"], "wte")
    put(t.wpe.weight, params["wpe"]["embedding"], "wpe")
    for i, block in enumerate(t.h):
      p = params[f"h_{i}"]
      norm(block.ln_1, p["ln_1"], f"h_{i}.ln_1")
      dense(block.attn.c_attn, p["attn"]["c_attn"], f"h_{i}.attn.c_attn")
      dense(block.attn.c_proj, p["attn"]["c_proj"], f"h_{i}.attn.c_proj")
      norm(block.ln_2, p["ln_2"], f"h_{i}.ln_2")
      dense(block.mlp.c_fc, p["mlp"]["c_fc"], f"h_{i}.mlp.c_fc")
      dense(block.mlp.c_proj, p["mlp"]["c_proj"], f"h_{i}.mlp.c_proj")
    norm(t.ln_f, params["ln_f"], "ln_f")


def _to_flax_layout(model: GPT) -> dict:
  """The inverse of `load_flax_params` (numpy arrays), for the self-check."""
  a = lambda x: x.detach().cpu().numpy()
  dense = lambda m: {"kernel": a(m.weight).T, **({"bias": a(m.bias)} if m.bias is not None else {})}
  norm = lambda m: {"scale": a(m.weight), **({"bias": a(m.bias)} if m.bias is not None else {})}
  t = model.transformer
  out = {"wte": {"embedding": a(t.wte.weight)}, "wpe": {"embedding": a(t.wpe.weight)},
         "ln_f": norm(t.ln_f)}
  for i, b in enumerate(t.h):
    out[f"h_{i}"] = {"ln_1": norm(b.ln_1), "ln_2": norm(b.ln_2),
                     "attn": {"c_attn": dense(b.attn.c_attn), "c_proj": dense(b.attn.c_proj)},
                     "mlp": {"c_fc": dense(b.mlp.c_fc), "c_proj": dense(b.mlp.c_proj)}}
  return out


def main():
  torch.manual_seed(0)
  config = GPTConfig(**SHAKESPEARE_CHAR)
  model = GPT(config).eval()
  x = torch.randint(0, config.vocab_size, (4, config.block_size))
  y = torch.roll(x, -1, dims=1)
  with torch.no_grad():
    loss = model(x, y)[1].item()
  print(f"params {model.get_num_params() / 1e6:.2f}M  loss at init {loss:.4f}  "
        f"ln(vocab) {math.log(config.vocab_size):.4f}")
  for bias in (False, True):   # round trip through the flax layout, with and without biases
    cfg = GPTConfig(**{**SHAKESPEARE_CHAR, "bias": bias, "n_layer": 2})
    src, dst = GPT(cfg).eval(), GPT(cfg).eval()
    load_flax_params(dst, {"params": _to_flax_layout(src)})
    with torch.no_grad():
      same = torch.equal(src(x, y)[0], dst(x, y)[0])
    print(f"flax-layout copy (bias={bias}) reproduces the logits: {same}")
  model.train()
  opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
  print(f"one train step, loss {train_step(model, opt, x, y).item():.4f}")


if __name__ == "__main__":
  main()
