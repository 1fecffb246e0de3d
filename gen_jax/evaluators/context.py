"""What an evaluator sees: the family's pure functions, the eval params and state,
the data it asks for and a writer; never the trainer.

The run loop builds one `Context` per evaluation; evaluators are
`evaluate(ctx, name, eval_config) -> {key: (value, unit)}`.
"""
import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import parallel, types
from gen_jax.data import pipeline, sources, variants


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  """A split as fixed evaluation examples.

  Attributes:
    arrays: {field: array[N, ...]} raw (source) values; the stochastic part of
      a variant (dynamic binarization) is fixed once, see `variant`.
    spec: raw per-example fields of `arrays`.
    variant: the data variant to apply to them (in model space).
    where: "<dataset>:<split> (<variant>)" for result units, plus how a text
      stream was cut into windows.
  """
  arrays: dict
  spec: dict
  variant: str
  where: str

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))


@dataclasses.dataclass
class Context:
  """One evaluation of one checkpoint."""
  family: types.Family
  params: Any                   # eval params (the EMA when present)
  state: Any
  step: int
  config: ml_collections.ConfigDict
  spec: dict                    # raw per-example spec of the training batches
  mesh: jax.sharding.Mesh
  rng: jax.Array                # base key of every evaluation of this run
  workdir: str
  writer: Any                   # utils.writers.MetricWriter

  @property
  def data(self) -> ml_collections.ConfigDict:
    return self.config.data

  def key(self, *names) -> jax.Array:
    return parallel.fold(self.rng, "eval", *names)

  def split(self, name: str = "") -> EvalSplit:
    """The split `name` (default data.eval_split) as fixed evaluation examples."""
    d = self.data
    name = name or d.eval_split
    raw = sources.from_config(d, name)
    arrays, spec, note = pipeline.eval_examples(raw, d)
    arrays, variant = variants.eval_batch_arrays(d.variant, arrays, spec)
    where = f"{d.get('description') or d.name}:{name} ({d.variant})"
    return EvalSplit(arrays, spec, variant, where + (f"; {note}" if note else ""))

  def source(self, name: str = "") -> sources.Split:
    """The split `name` (default data.eval_split) as the source holds it (a text stream
    stays one stream)."""
    return sources.from_config(self.data, name or self.data.eval_split)

  def train_examples(self, n: int) -> dict:
    """The first n examples of the training split (data.classes only), raw: {field: array[n]}."""
    d = self.data
    raw = pipeline.keep_classes(sources.from_config(d, d.train_split), d)
    return {k: v[:n] for k, v in raw.arrays.items()}

  def batches(self, fn, arrays: dict, batch_size: int, what: str):
    """Yields (fn(params, state, batch, i), mask) on the host for every global eval batch
    of `arrays` in order (`pipeline.eval_batches`: the last one padded, mask 0 there),
    printing progress every 30 s as "<what>: i/n batches, Ts"."""
    batches = list(pipeline.eval_batches(arrays, batch_size, jax.process_index(),
                                         jax.process_count()))
    t0, shown = time.time(), 0
    for i, (b, mask) in enumerate(batches):
      b = {k: parallel.to_global(v, self.mesh) for k, v in b.items()}
      out = parallel.to_host(fn(self.params, self.state, b, jnp.uint32(i)))
      yield out, parallel.to_host(parallel.to_global(mask, self.mesh))
      if time.time() - t0 > 30 * (shown + 1):
        shown += 1
        if parallel.is_main():
          print(f"{what}: {i + 1}/{len(batches)} batches, {time.time() - t0:.0f}s", flush=True)

  @functools.cached_property
  def sample_fn(self):
    """jit(family.sample): (params, state, rng, n) -> array[n, ...]; compiled once per n."""
    return jax.jit(self.family.sample, static_argnums=3)

  def samples(self, rng, n: int, **kwargs) -> np.ndarray:
    """n samples on the host from this checkpoint's eval params."""
    if kwargs:
      out = jax.jit(lambda p, s, r: self.family.sample(p, s, r, n, **kwargs))(
          self.params, self.state, rng)
    else:
      out = self.sample_fn(self.params, self.state, rng, n)
    return np.asarray(parallel.to_host(out))

  @functools.cached_property
  def reconstruct_fn(self):
    """jit(decode(encode(x))): (params, state, x) -> f32[B, ...] decoder means."""
    family = self.family
    return jax.jit(lambda p, s, x: family.decode(p, s, family.encode(p, s, x)))

  def stem(self, name: str) -> str:
    """<workdir>/samples/<name>_<step> (a file name without its extension)."""
    return os.path.join(self.workdir, "samples", f"{name}_{self.step:08d}")

  def path(self, name: str, ext: str) -> str:
    """<workdir>/samples/<name>_<step>.<ext>."""
    return f"{self.stem(name)}.{ext}"
