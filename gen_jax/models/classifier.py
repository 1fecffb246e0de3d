"""Image classifiers whose penultimate features define offline sample-quality metrics.

Inception weights cannot be fetched offline, so FD, KID, precision/recall and
the classifier score are computed in the features of a classifier trained
here on the same dataset (reported as FD_<classifier>, never as FID). It is a
one-player family ("model") trained by the generic trainer on labelled data
(config.data.labels = True puts `y: i32[B]` in the batch).

Architecture "cnn" (a LeNet-style CNN): [conv3x3(c) ReLU conv3x3(c) ReLU
maxpool2] for c in `channels`, then dense(`feature_dim`) ReLU (the features),
dropout, dense(num_classes) (experiments/classifier_mnist.py: channels
(16, 32), feature_dim 128).

Augmentation (training loss only, on the device, from the step's rng):
`shift` > 0 translates each image by independent integer offsets in
[-shift, shift] pixels along both axes (zero fill); `hflip` mirrors each
image left-right with probability 1/2 (for Fashion-MNIST, not for digits).

Loss: mean cross-entropy (nats). eval_fn gives per-example `accuracy` (0/1)
and `nll` (nats); `features` gives (penultimate features, class probabilities).
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import errors, types

ARCHS = ("cnn",)


class CNN(nn.Module):
  """x: f32[B, H, W, C] in [0, 1] -> (features f32[B, feature_dim], logits f32[B, classes])."""
  channels: Sequence[int]
  feature_dim: int
  num_classes: int
  dropout: float

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x
    for i, c in enumerate(self.channels):
      h = jax.nn.relu(nn.Conv(c, (3, 3), padding=1, name=f"conv_{i}a")(h))
      h = jax.nn.relu(nn.Conv(c, (3, 3), padding=1, name=f"conv_{i}b")(h))
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    feats = jax.nn.relu(nn.Dense(self.feature_dim, name="features")(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(feats)
    return feats, nn.Dense(self.num_classes, name="logits")(h)


def augment(rng: jax.Array, x: jax.Array, shift: int, hflip: bool) -> jax.Array:
  """Random translation (zero fill) and optional left-right flip, per example.

  x: f32[B, H, W, C] -> f32[B, H, W, C]; out[b] = x[b] moved by (dy, dx) with
  dy, dx ~ U{-shift..shift} independently, then mirrored with probability 1/2
  if hflip.
  """
  if shift < 0:
    raise errors.ConfigError(f"model.shift must be >= 0 pixels (got {shift})")
  b, h, w, _ = x.shape
  k_shift, k_flip = jax.random.split(rng)
  if shift:
    offsets = jax.random.randint(k_shift, (b, 2), 0, 2 * shift + 1)
    padded = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    x = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0),
                                                      (h, w, img.shape[-1])))(padded, offsets)
  if hflip:
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x)
  return x


def make_net(m: ml_collections.ConfigDict) -> CNN:
  if m.arch not in ARCHS:
    raise errors.ConfigError(errors.choices("model.arch", m.arch, ARCHS))
  return CNN(tuple(m.channels), m.feature_dim, m.num_classes, m.dropout)


def make(config: ml_collections.ConfigDict, spec: dict) -> types.Family:
  """Builds the classifier family from `config.model` for images of shape (H, W, C)."""
  x_shape = tuple(spec["x"].shape)   # the image (H, W, C) or point (D,) field
  m = config.model
  if len(x_shape) != 3:
    raise errors.ConfigError(f"the classifier needs images (got examples of shape {x_shape})")
  if not config.data.get("labels", False):
    raise errors.ConfigError("the classifier trains on labels: set config.data.labels = True")
  net = make_net(m)

  def init(rng, batch):
    return {"model": net.init(rng, batch["x"])["params"]}, {}

  shift, hflip = int(m.get("shift", 0)), bool(m.get("hflip", False))
  if shift < 0:
    raise errors.ConfigError(f"model.shift must be >= 0 pixels (got {shift})")

  def loss(player, params, state, batch, rng):
    del player
    k_aug, k_drop = jax.random.split(rng)
    x = augment(k_aug, batch["x"], shift, hflip) if (shift or hflip) else batch["x"]
    _, logits = net.apply({"params": params["model"]}, x, train=True,
                          rngs={"dropout": k_drop})
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, batch["y"][:, None].astype(jnp.int32), axis=1)[:, 0]
    acc = (logits.argmax(-1) == batch["y"]).astype(jnp.float32)
    return nll.mean(), (state, {"accuracy": acc.mean()})

  def eval_fn(params, state, batch, rng, **kw):
    """Per-example accuracy (0/1) and nll (nats) on a labelled batch: f32[B] each."""
    del state, rng, kw
    _, logits = net.apply({"params": params["model"]}, batch["x"])
    logp = jax.nn.log_softmax(logits)
    y = batch["y"].astype(jnp.int32)
    return {"accuracy": (logits.argmax(-1) == y).astype(jnp.float32),
            "nll": -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]}

  def sample(params, state, rng, n):
    """A classifier generates nothing; returns n blank images so sample grids still work."""
    del params, state, rng
    return jnp.zeros((n,) + tuple(x_shape))

  return types.Family(players=("model",), init=init, loss=loss, sample=sample,
                      eval_fn=eval_fn,
                      eval_units={"accuracy": "fraction correct", "nll": "nats per example"})


def features(net: CNN, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(penultimate features f32[B, feature_dim], class probabilities f32[B, classes])."""
  feats, logits = net.apply({"params": params["model"]}, x)
  return feats, jax.nn.softmax(logits)


def default_model(**kw) -> ml_collections.ConfigDict:
  c = dict(arch="cnn", channels=(32, 64), feature_dim=128, num_classes=10, dropout=0.5,
           shift=0, hflip=False)
  c.update(kw)
  return ml_collections.ConfigDict(c)
