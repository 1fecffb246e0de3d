"""Data specs: the named fields of a batch, each with its per-example shape and dtype.

A source declares what its examples hold (u8 images, f32 points, i32 token
windows, i32 labels, i32 discrete tables, sequences with lengths); the trainer
builds the init batch, the batch sharding and the model-space view (after the
data variant) from the spec, so no loop code assumes a particular field.

`modality` says how a field is shown and transformed:
  image    u8[H, W, C] pixels; image variants (grayscale, binarized, ...) apply
  points   f32[D] continuous vectors (toy 2-D densities)
  tokens   i32[T] ids in [0, cardinality); `vocab` maps ids to characters
  label    i32[] class ids in [0, cardinality)
  table    i32[K] discrete columns, column k in [0, cardinality[k])
  length   i32[] valid length of a padded sequence field
  weight   f32[] per-example weight (0 marks padding of a whole-split batch)
"""
import dataclasses
from typing import Mapping

import jax
import numpy as np

WEIGHT = "weight"   # name of the per-example weight field of whole-split batches

MODALITIES = ("image", "points", "tokens", "label", "table", "length", "weight")


@dataclasses.dataclass(frozen=True)
class Field:
  """One named field of an example.

  Attributes:
    shape: per-example shape (no batch axis).
    dtype: numpy dtype name, e.g. "uint8", "float32", "int32".
    modality: one of MODALITIES.
    cardinality: number of values of a token/label field (a tuple per column
      for tables); 0 where it does not apply.
    vocab: for character tokens, the character of each id.
    columns: for tables, each column's name (the CSV header of samples).
  """
  shape: tuple
  dtype: str
  modality: str
  cardinality: int | tuple = 0
  vocab: tuple = ()
  columns: tuple = ()

  def __post_init__(self):
    if self.modality not in MODALITIES:
      raise ValueError(f"unknown modality {self.modality!r}; valid: {', '.join(MODALITIES)}")

  def replace(self, **kw) -> "Field":
    return dataclasses.replace(self, **kw)


Spec = Mapping[str, Field]


def of_arrays(arrays: Mapping[str, np.ndarray], modalities: Mapping[str, str],
              cardinality: Mapping[str, int] | None = None) -> dict:
  """The spec of per-example arrays {name: array[N, ...]}."""
  cardinality = cardinality or {}
  return {k: Field(tuple(v.shape[1:]), v.dtype.name, modalities[k], cardinality.get(k, 0))
          for k, v in arrays.items()}


def abstract_batch(spec: Spec, batch: int, leading: tuple = ()) -> dict:
  """{name: ShapeDtypeStruct[*leading, batch, *shape]} for jax.eval_shape."""
  return {k: jax.ShapeDtypeStruct(leading + (batch,) + tuple(f.shape), np.dtype(f.dtype))
          for k, f in spec.items()}


def of_field(spec: Spec, modality: str) -> str | None:
  """Name of the first field of `modality`, or None."""
  return next((k for k, f in spec.items() if f.modality == modality), None)


def describe(spec: Spec) -> str:
  """'x: uint8[28, 28, 1] image, y: int32[] label' (for error messages and logs)."""
  return ", ".join(f"{k}: {f.dtype}{list(f.shape)} {f.modality}" for k, f in spec.items())


def example(shape: tuple) -> dict:
  """The model-space spec of one field "x" of shape `shape`: images (H, W, C) or points (D,).

  For notebooks and tests that build a family without a dataset.
  """
  shape = tuple(shape)
  return {"x": Field(shape, "float32", "image" if len(shape) == 3 else "points")}
