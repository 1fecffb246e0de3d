"""Class balance of generated images (a bias check) in the classes of an in-repo classifier.

type "class_balance". Config keys (`config.evals.<name>`):
  classifier_workdir, classifier_config, train_missing, batch_size: the
    classifier, restored exactly as gen_jax.evaluators.feature_space restores
    it (and, with train_missing, trained first by the run loop through
    `prerequisites`)
  num_samples: generated images (default 10,000)
  real_split: "" = data.eval_split; num_real: its images (0 = the whole split)
Results (`<name>/...`), for the generated images and for the real split:
  generated_histogram, real_histogram: images per predicted class 0..C-1 (text)
  generated_kl_to_uniform, real_kl_to_uniform: nats, KL(p_hat || uniform
    over C), 0 when balanced, ln C when one class takes everything
  generated_max_min_ratio, real_max_min_ratio: count of the most frequent
    class / count of the least frequent (inf when a class never occurs)
  real_label_histogram: the split's own labels, when it has them
  png: bar chart of the class frequencies, generated vs real.
The real rows are the floor: the classifier's errors are not spread evenly over
the classes, so a generator that reproduced the real images exactly would
score the real values, not 0 and 1.
"""
import os

import numpy as np

from gen_jax import errors, parallel
from gen_jax.evaluators import feature_space, mode_coverage
from gen_jax.metrics import modes


def prerequisites(ec) -> list:
  """The classifier run (see feature_space.prerequisites)."""
  return feature_space.prerequisites(ec)


def check(name: str, ec, config) -> None:
  """Fails before training on sample counts this evaluator cannot use."""
  del config
  for key, default in (("num_samples", 10000), ("batch_size", 1000)):
    value = ec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise errors.ConfigError(f"evals.{name}.{key} must be an integer >= 1 (got {value!r})")


def balance_stats(labels, num_classes: int) -> dict:
  """Histogram, frequencies, KL to uniform and max/min ratio of class labels.

  Args:
    labels: i64[N] class ids in [0, num_classes).
    num_classes: C.

  Returns:
    dict(histogram: i64[C], frequencies: f64[C] summing to 1, kl_to_uniform:
    KL(p_hat || U_C) in nats, max_min_ratio: max count / min count, inf when
    some class has no label).
  """
  out = modes.class_balance(labels, num_classes)
  counts = out["histogram"]
  low = counts.min()
  ratio = float(counts.max() / low) if low > 0 else float("inf")
  return {"histogram": counts, "frequencies": counts / counts.sum(),
          "kl_to_uniform": out["kl_to_uniform"], "max_min_ratio": ratio}


def real_images(ctx, split: str, n: int) -> tuple[np.ndarray, np.ndarray | None, str]:
  """(f32[n, H, W, C] in [0, 1], labels or None, "<dataset>:<split>") as the classifier sees
  them: the source's 8-bit images / 255 (or its {0, 1} images), whatever the model's variant."""
  src = ctx.source(split)
  if src.kind != "image":
    raise errors.ConfigError(f"class_balance needs an image dataset (got {src.kind} data)")
  x = src.x[:n] if n else src.x
  y = src.y[:len(x)] if src.y is not None else None
  return x.astype(np.float32) / (1.0 if src.binary else 255.0), y, f"{ctx.data.name}:{split}"


def evaluate(ctx, name: str, ec) -> dict:
  check(name, ec, ctx.config)
  clf = feature_space.load_classifier(ec)
  split = ec.get("real_split", "") or ctx.data.eval_split
  n = ec.get("num_samples", 10000)
  fake = mode_coverage.generated(ctx, name, n, ec.get("batch_size", 1000))
  if fake.ndim != 4:
    raise errors.ConfigError(f"class_balance needs generated images [N, H, W, C] (got "
                             f"{fake.shape})")
  real, labels, where = real_images(ctx, split, ec.get("num_real", 0))
  _, p_fake = clf.features(fake)
  _, p_real = clf.features(real)
  c = p_fake.shape[1]
  stats = {"generated": balance_stats(p_fake.argmax(-1), c),
           "real": balance_stats(p_real.argmax(-1), c)}
  counts = {"generated": len(fake), "real": len(real)}
  what = {"generated": "generated images", "real": f"real images of {where} (the floor)"}
  out = {}
  for who, s in stats.items():
    how = f"{counts[who]} {what[who]}, labelled by {clf.description}"
    out[f"{name}/{who}_histogram"] = (" ".join(str(int(v)) for v in s["histogram"]),
                                      f"images per predicted class 0..{c - 1}; {how}")
    out[f"{name}/{who}_kl_to_uniform"] = (s["kl_to_uniform"],
                                          f"nats, KL(predicted-class frequencies || uniform "
                                          f"over {c}); {how}")
    out[f"{name}/{who}_max_min_ratio"] = (s["max_min_ratio"],
                                          f"most / least frequent predicted class; {how}")
  if labels is not None:
    true = modes.class_balance(labels, c)["histogram"]
    out[f"{name}/real_label_histogram"] = (" ".join(str(int(v)) for v in true),
                                           f"true labels 0..{c - 1} of {len(real)} images of "
                                           f"{where}")
  path = ctx.path(name, "png")
  if parallel.is_main():
    save_bar_chart(path, {f"generated ({len(fake)})": stats["generated"]["frequencies"],
                          f"real {where} ({len(real)})": stats["real"]["frequencies"]},
                   title=f"{name}, step {ctx.step}: predicted-class frequencies ({clf.name})")
  out[f"{name}/png"] = (path, "bar chart of predicted-class frequencies, generated vs real")
  return out


def save_bar_chart(path: str, freqs: dict, title: str) -> str:
  """Grouped bars of class frequencies {series name: f[C]}, saved as a PNG at `path`.

  One group per class 0..C-1 with one bar per series and a dashed line at the
  uniform frequency 1/C. Drawn with matplotlib's object API (no pyplot state,
  no display).
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  names = list(freqs)
  c = len(freqs[names[0]])
  width = 0.8 / len(names)
  fig = Figure(figsize=(max(4.0, 0.5 * c + 1.5), 3.0), dpi=100)
  ax = fig.subplots()
  for j, series in enumerate(names):
    ax.bar(np.arange(c) + (j - (len(names) - 1) / 2) * width, freqs[series], width,
           label=series)
  ax.axhline(1.0 / c, color="0.4", linestyle="--", linewidth=1, label=f"uniform 1/{c}")
  ax.set_xticks(np.arange(c))
  ax.set_xlabel("predicted class")
  ax.set_ylabel("frequency")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path)
  return path
