"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015).

Every unit carries a degree. Inputs use the natural ordering (input j, 0-based,
has degree j + 1); a hidden unit of degree m may see units of degree <= m; an
output of degree i may see only units of degree < i. Output i (0-based) of each
parameter group therefore depends only on inputs 0..i-1: the autoregressive
property a MAF or IAF needs for a triangular Jacobian.
"""
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def input_degrees(d: int) -> tuple[int, ...]:
  """Natural ordering: degrees 1..d."""
  return tuple(range(1, d + 1))


def hidden_degrees(width: int, d: int) -> tuple[int, ...]:
  """Cyclic degrees 1, 2, ..., d-1, 1, 2, ... for `width` hidden units.

  Degree d would connect to no output and degree 0 to no input, so the cycle
  skips both and every hidden unit is used. A width of at least d - 1 lets
  output i see every input before it.
  """
  return tuple(k % max(d - 1, 1) + 1 for k in range(width))


def degree_mask(in_degrees: Sequence[int], out_degrees: Sequence[int],
                strict: bool) -> np.ndarray:
  """f32[in, out] connectivity: out_deg > in_deg if `strict` (outputs), else >=."""
  i = np.asarray(in_degrees)[:, None]
  o = np.asarray(out_degrees)[None, :]
  return ((o > i) if strict else (o >= i)).astype(np.float32)


class MaskedDense(nn.Module):
  """Dense layer whose kernel is masked by unit degrees: f32[..., in] -> f32[..., out].

  Degrees are tuples so the module stays hashable; the mask is a constant, not
  a variable.
  """
  in_degrees: tuple[int, ...]
  out_degrees: tuple[int, ...]
  strict: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    n_in, n_out = len(self.in_degrees), len(self.out_degrees)
    mask = jnp.asarray(degree_mask(self.in_degrees, self.out_degrees, self.strict))
    kernel = self.param("kernel", self.kernel_init, (n_in, n_out))
    bias = self.param("bias", nn.initializers.zeros, (n_out,))
    return x @ (kernel * mask) + bias


class MADE(nn.Module):
  """x: f32[B, D] -> f32[B, D, n_params]; out[:, i, p] depends only on x[:, :i].

  `hidden` are the hidden widths (each >= D - 1 so every input is reachable).
  With `zero_init` the output layer starts at zero (weights and biases), so a
  flow built on it starts at the identity.
  """
  hidden: Sequence[int]
  n_params: int = 2
  activation: Callable = jax.nn.relu
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    deg = input_degrees(d)
    for i, width in enumerate(self.hidden):
      hdeg = hidden_degrees(width, d)
      x = self.activation(MaskedDense(deg, hdeg, name=f"masked_{i}")(x))
      deg = hdeg
    # Output unit p * D + i is parameter p of dimension i, with degree i + 1.
    out_deg = input_degrees(d) * self.n_params
    init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
    out = MaskedDense(deg, out_deg, strict=True, kernel_init=init, name="out")(x)
    out = out.reshape(x.shape[:-1] + (self.n_params, d))
    return jnp.swapaxes(out, -1, -2)
