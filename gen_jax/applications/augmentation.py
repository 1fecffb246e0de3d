"""Data augmentation with a class-conditional generator, and train-on-synthetic/test-on-real.

Protocol (Ravuri & Vinyals 2019, "Classification Accuracy Score for
Conditional Generative Models"): a class-conditional generator is trained
once on the labelled training split (W/generator/); a fixed pool of synthetic
examples, balanced over the classes, is drawn from it once (W/synthetic/).
For each number of real labels n, synthetic ratio r and seed s, a classifier
sub-run (W/<n>_<r>_<s>/, n = "all" for 0) trains on
  - a stratified subset of n real training examples (n/C per class; the whole
    split for n = 0), fixed by s, plus
  - r * n synthetic examples, balanced over the classes, drawn from the pool
    in an order fixed by s (the set for r is a prefix of the set for r' > r),
and is evaluated on the real test split. "tstr" (train on synthetic, test on
real) trains on n synthetic examples alone; with n = all it is the paper's
Classification Accuracy Score. Ratio 0 writes exactly the real subset, so it
is the real-only baseline (the tests check the identity). Every condition of
one n trains with the same batch, min(classifier batch, n), for the
classifier experiment's own number of steps.

The training sets are npz files (W/data/<n>_<r>_<s>.npz: `x_train`/`y_train`,
then `x_test`/`y_test` = the real test split) read by the "npz" data source,
so each sub-run is an ordinary run of the classifier experiment; rerunning
reuses the generator, the pool and every finished sub-run.

Config keys (`config.application`): type "augmentation"; generator (an
experiment spec, e.g. "experiments/vae_mnist.py:cond") and
generator_overrides (nested dict of its keys); classifier (e.g.
"experiments/classifier_mnist.py") and classifier_overrides; num_real
(e.g. (100, 1000, 0), 0 = all labels); synthetic_ratio (e.g. (0, 1, 4),
synthetic examples per real one); tstr (also train on synthetic only);
seeds (e.g. (0, 1, 2)); sample_batch (generator samples per jitted call).
The generator must sample given labels (`sample(..., labels=i32[n])`) over
the classifier's classes; synthetic images are its samples in [0, 1]
quantized to 8 bits, as the classifier's data are.

Results: `n<n>/ratio<r>/accuracy` (and `n<n>/tstr/accuracy`): test accuracy,
mean over seeds, with `_std` (sample standard deviation over seeds);
`figure`: W/eval/augmentation.png, accuracy vs n with one line per ratio and
± 1 std bars; the table also goes to W/eval/augmentation.csv.
"""
import inspect
import json
import os

import jax
import numpy as np

from gen_jax import applications, config_lib, errors, parallel
from gen_jax.data import sources


def _log(msg: str) -> None:
  if parallel.is_main():
    print(f"augmentation | {msg}", flush=True)


def check(app) -> None:
  """One-line errors for application keys, before anything trains."""
  if not app.generator or not app.classifier:
    raise errors.ConfigError("application.generator and application.classifier must name "
                             "experiments, e.g. experiments/vae_mnist.py:cond")
  if not tuple(app.num_real) or min(app.num_real) < 0:
    raise errors.ConfigError(f"application.num_real must list counts >= 0 (0 = all labels; "
                             f"got {tuple(app.num_real)})")
  if not tuple(app.synthetic_ratio) or min(app.synthetic_ratio) < 0:
    raise errors.ConfigError(f"application.synthetic_ratio must list ratios >= 0 (got "
                             f"{tuple(app.synthetic_ratio)})")
  if not tuple(app.seeds) or len(set(app.seeds)) != len(app.seeds):
    raise errors.ConfigError(f"application.seeds must be distinct (got {tuple(app.seeds)})")
  if app.sample_batch < 1:
    raise errors.ConfigError(f"application.sample_batch must be >= 1 (got {app.sample_batch})")


def overrides(section) -> dict:
  """A nested override section ({"data": {"name": ...}}) as dotted keys."""
  return config_lib.flatten(section.to_dict()) if section else {}


def classifier_config(app, data_path: str, batch: int, seed: int, description: str):
  """The classifier experiment with its overrides, trained on the npz file `data_path`."""
  return applications.sub_config(app.classifier, {
      **overrides(app.classifier_overrides),
      "data.name": "npz", "data.path": data_path, "data.batch_size": batch,
      "data.train_split": "train", "data.eval_split": "test", "seed": seed,
      "eval_at_end": True, "data.description": description})


def check_generator(family, config, num_classes: int) -> None:
  """Refuses (one line) a generator that cannot sample given labels of `num_classes` classes."""
  who = "application 'augmentation' (generator)"
  applications.require(family, "sample", who)
  takes_labels = "labels" in inspect.signature(family.sample).parameters
  k = config.model.get("num_classes", 0)
  if not takes_labels or k != num_classes:
    raise errors.ConfigError(
        f"{who} needs a class-conditional sampler, sample(..., labels), over {num_classes} "
        f"classes; family {config.family!r} with model.num_classes={k} has none")


def balanced_counts(total: int, num_classes: int) -> np.ndarray:
  """i64[C]: `total` split over C classes as evenly as possible (the first classes get the rest)."""
  return total // num_classes + (np.arange(num_classes) < total % num_classes)


def stratified_subset(y: np.ndarray, n: int, seed: int, num_classes: int) -> np.ndarray:
  """Sorted indices i64[n] of n examples, balanced over classes, chosen by `seed`; n = 0: all.

  Class c's examples are taken in the order of a permutation seeded by
  (seed, c), so a smaller n gives a subset of a larger one.
  """
  if n == 0:
    return np.arange(len(y))
  counts, picked = balanced_counts(n, num_classes), []
  for c in range(num_classes):
    idx = np.flatnonzero(y == c)
    if len(idx) < counts[c]:
      raise errors.ConfigError(f"num_real={n} needs {counts[c]} training examples of class {c}; "
                               f"the split has {len(idx)}")
    picked.append(idx[np.random.default_rng((seed, c)).permutation(len(idx))[:counts[c]]])
  return np.sort(np.concatenate(picked))


def pool_indices(pool_y: np.ndarray, total: int, seed: int, num_classes: int) -> np.ndarray:
  """Indices i64[total] into the pool, balanced over classes, in an order fixed by `seed`."""
  counts, picked = balanced_counts(total, num_classes), []
  for c in range(num_classes):
    idx = np.flatnonzero(pool_y == c)
    order = np.random.default_rng((seed, c, 1)).permutation(len(idx))
    picked.append(idx[order[:counts[c]]])
  return np.concatenate(picked)


def training_set(real_x, real_y, pool_x, pool_y, n: int, ratio, seed: int,
                 num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """(x u8[M, H, W, C], y i32[M]): the real subset, then the synthetic examples.

  `ratio` is a number of synthetic examples per real one, or "tstr" (n
  synthetic examples and no real ones).
  """
  real = stratified_subset(real_y, n, seed, num_classes)
  if ratio == "tstr":
    real, synth = real[:0], pool_indices(pool_y, len(real), seed, num_classes)
  else:
    synth = pool_indices(pool_y, int(ratio * len(real)), seed, num_classes)
  x = np.concatenate([real_x[real], pool_x[synth]])
  y = np.concatenate([real_y[real], pool_y[synth]]).astype(np.int32)
  return x, y


def _save_npz(path: str, **arrays) -> None:
  """Writes an npz file atomically (a crash leaves no half-written file)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def synthetic_pool(gen, gen_workdir: str, path: str, per_class: int, num_classes: int,
                   shape: tuple, seed: int, sample_batch: int) -> tuple[np.ndarray, np.ndarray]:
  """(x u8[C*P, H, W, C], y i32[C*P]): P samples per class from the trained generator.

  Saved to `path` with the settings it was drawn with and reused while they
  match. Samples in [0, 1] are quantized to 8 bits (round(255 x)).
  """
  meta = {"per_class": per_class, "num_classes": num_classes, "seed": seed,
          "generator": config_lib.as_json(gen)}
  if os.path.isfile(path) and os.path.isfile(path + ".json"):
    with open(path + ".json") as f:
      if json.load(f) == meta:
        _log(f"reusing synthetic pool {path}")
        with np.load(path) as saved:
          return saved["x"], saved["y"]
  labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
  chunk = min(sample_batch, len(labels))
  base = parallel.fold(jax.random.key(seed), "augmentation", "pool")
  out = []
  with applications.Restored(gen, gen_workdir) as r:
    ctx = r.ctx
    fn = jax.jit(lambda p, s, rng, y: ctx.family.sample(p, s, rng, chunk, labels=y))
    for i, start in enumerate(range(0, len(labels), chunk)):
      y = labels[start:start + chunk]
      y_full = np.pad(y, (0, chunk - len(y)))          # the last call is padded
      x = np.asarray(parallel.to_host(fn(ctx.params, ctx.state, jax.random.fold_in(base, i),
                                         y_full)))[:len(y)]
      out.append(np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8))
  x = np.concatenate(out)
  if x.shape[1:] != shape:
    raise errors.ConfigError(f"the generator samples examples of shape {x.shape[1:]}; the "
                             f"classifier's data have shape {shape}")
  if parallel.is_main():
    _save_npz(path, x=x, y=labels)
    with open(path + ".json", "w") as f:
      json.dump(meta, f)
    from gen_jax.utils import images  # pylint: disable=g-import-not-at-top
    grid = x.reshape((num_classes, per_class) + shape)[:, :10].transpose(1, 0, 2, 3, 4)
    images.save_grid(path[:-len(".npz")] + ".png", grid.reshape((-1,) + shape) / 255.0,
                     rows=min(per_class, 10))
  _log(f"drew {len(x)} synthetic examples ({per_class} per class) to {path}")
  return x, labels


def _name(n: int, ratio) -> str:
  return f"{'all' if n == 0 else n}_{ratio}"


def _accuracy(config, workdir: str) -> float:
  """Trains (or reuses) the classifier sub-run; its test accuracy (fraction correct)."""
  from gen_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  applications.train(config, workdir)
  path = os.path.join(workdir, "eval", f"step_{config.total_steps:08d}.json")
  if not os.path.isfile(path):          # trained by a run that stopped before its evaluation
    loop.evaluate(config, workdir)
  with open(path) as f:
    results = json.load(f)["results"]
  key = [k for k in results if k.endswith("/accuracy")]
  if len(key) != 1:
    raise errors.ConfigError(f"the classifier experiment must have one accuracy evaluator "
                             f"(found {key or 'none'} in {path})")
  return float(results[key[0]])


def run(config, workdir: str) -> dict:
  """Trains the generator, draws the pool, trains and scores every classifier sub-run."""
  app = config.application
  check(app)
  gen = applications.sub_config(app.generator, overrides(app.generator_overrides))
  clf = applications.sub_config(app.classifier, overrides(app.classifier_overrides))
  num_classes = int(clf.model.num_classes)
  real = sources.from_config(clf.data, clf.data.train_split)
  test = sources.from_config(clf.data, clf.data.eval_split)
  if real.y is None or test.y is None or real.y.max() >= num_classes:
    raise errors.ConfigError(f"the classifier's data {clf.data.name!r} need labels in "
                             f"0..{num_classes - 1}")
  gen_workdir = os.path.join(workdir, "generator")
  from gen_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  with loop.precision(gen):
    probe = loop.setup(gen, gen_workdir)
    probe.close()
  check_generator(probe.family, gen, num_classes)
  _log(f"generator {app.generator} in {gen_workdir}")
  applications.train(gen, gen_workdir)
  n_eff = {n: len(real) if n == 0 else n for n in app.num_real}
  ratios = tuple(app.synthetic_ratio) + (("tstr",) if app.tstr else ())
  most = int(np.ceil(max(n_eff.values()) * max(max(app.synthetic_ratio), 1 if app.tstr else 0)))
  per_class = max(int(balanced_counts(most, num_classes).max()), 1)
  pool_x, pool_y = synthetic_pool(gen, gen_workdir, os.path.join(workdir, "synthetic", "pool.npz"),
                                  per_class, num_classes, tuple(real.x.shape[1:]), config.seed,
                                  app.sample_batch)
  acc, total, i = {}, len(n_eff) * len(ratios) * len(app.seeds), 0
  for n in app.num_real:
    batch = min(clf.data.batch_size, n_eff[n])
    for ratio in ratios:
      for seed in app.seeds:
        i += 1
        name = f"{_name(n, ratio)}_{seed}"
        sub_workdir, data_path = os.path.join(workdir, name), os.path.join(workdir, "data",
                                                                         name + ".npz")
        cfg = classifier_config(app, data_path, batch, int(seed),
                                f"{clf.data.name} ({_name(n, ratio)}, seed {seed})")
        done = os.path.isfile(os.path.join(sub_workdir, "eval",
                                           f"step_{cfg.total_steps:08d}.json"))
        if not done and not os.path.isfile(data_path) and parallel.is_main():
          x, y = training_set(real.x, real.y, pool_x, pool_y, n, ratio, int(seed), num_classes)
          _save_npz(data_path, x_train=x, y_train=y, x_test=test.x, y_test=test.y)
        _log(f"[{i}/{total}] {name}: classifier in {sub_workdir}")
        acc[(n, ratio, seed)] = _accuracy(cfg, sub_workdir)
        _log(f"[{i}/{total}] {name}: test accuracy {acc[(n, ratio, seed)]:.4f}")
  return summarize(acc, app, n_eff, ratios, test_where=f"{clf.data.name}:{clf.data.eval_split} "
                   f"({len(test)} examples)", workdir=workdir)


def summarize(acc: dict, app, n_eff: dict, ratios: tuple, test_where: str, workdir: str) -> dict:
  """{key: (value, unit)}: mean and std over seeds per (n, ratio); the figure and CSV table."""
  out, rows = {}, []
  seeds = tuple(app.seeds)
  for n in app.num_real:
    for ratio in ratios:
      v = np.array([acc[(n, ratio, s)] for s in seeds])
      mean = float(v.mean())
      std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
      what = "synthetic only (TSTR)" if ratio == "tstr" else f"real + {ratio}x synthetic"
      key = f"n{'all' if n == 0 else n}/{'tstr' if ratio == 'tstr' else f'ratio{ratio}'}"
      out[f"{key}/accuracy"] = (mean, f"fraction correct on {test_where}; {n_eff[n]} real "
                                      f"labels, {what}; mean over seeds {seeds}")
      out[f"{key}/accuracy_std"] = (std, f"sample std over {len(seeds)} seeds" if len(v) > 1
                                    else "one seed: no spread")
      rows.append((n_eff[n], ratio, mean, std, *v))
  if parallel.is_main():
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    with open(os.path.join(workdir, "eval", "augmentation.csv"), "w") as f:
      f.write(",".join(["num_real", "ratio", "mean", "std"] + [f"seed_{s}" for s in seeds])
              + "\n")
      for r in rows:
        f.write(",".join(str(v) for v in r[:2]) + "," + ",".join(f"{v:.6f}" for v in r[2:])
                + "\n")
  path = os.path.join(workdir, "eval", "augmentation.png")
  if parallel.is_main():
    draw(path, rows, ratios, title=f"test accuracy vs real labels ({test_where}; mean ± std "
                                   f"over {len(seeds)} seeds)")
  out["figure"] = (path, "accuracy vs number of real labels, one line per synthetic ratio")
  return out


COLORS = ((30, 90, 200), (200, 30, 30), (0, 140, 0), (240, 140, 0), (120, 0, 160),
          (0, 150, 150), (90, 90, 90))


def draw(path: str, rows: list, ratios: tuple, title: str) -> str:
  """Accuracy (y) vs number of real labels (x, log scale), one line per ratio, ± std bars.

  `rows`: (num_real, ratio, mean, std, ...) tuples.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  width, height, x0, y0, pw, ph = 760, 480, 70, 40, 500, 360
  img = Image.new("RGB", (width, height), "white")
  d = ImageDraw.Draw(img)
  d.text((12, 8), title, fill="black")
  ns = sorted({r[0] for r in rows})
  lo_y = min(r[2] - r[3] for r in rows)
  lo_y = max(0.0, np.floor(lo_y * 10) / 10 - 0.05)
  ln = np.log10(ns)
  span = max(ln[-1] - ln[0], 1e-9)

  def px(n, v, shift=0.0):
    t = 0.5 if len(ns) == 1 else (np.log10(n) - ln[0]) / span
    return x0 + 20 + t * (pw - 40) + shift, y0 + (1.0 - v) / (1.0 - lo_y) * ph

  d.rectangle([x0, y0, x0 + pw, y0 + ph], outline="black")
  for n in ns:
    x, _ = px(n, lo_y)
    d.line([x, y0 + ph, x, y0 + ph + 5], fill="black")
    d.text((x - 12, y0 + ph + 8), str(n), fill="black")
  tick = 0.05 if 1.0 - lo_y <= 0.5 else 0.1
  for v in np.arange(np.ceil(lo_y / tick - 1e-9) * tick, 1.0 + 1e-9, tick):
    _, y = px(ns[0], v)
    d.line([x0 - 5, y, x0, y], fill="black")
    d.text((x0 - 40, y - 6), f"{v:.2f}", fill="black")
  d.text((x0 + pw // 2 - 60, y0 + ph + 24), "real labelled examples (log)", fill="black")
  d.text((x0, y0 - 16), "test accuracy", fill="black")
  for k, ratio in enumerate(ratios):
    color = COLORS[k % len(COLORS)]
    pts = [(r[0], r[2], r[3]) for r in rows if r[1] == ratio]
    shift = 6.0 * (k - (len(ratios) - 1) / 2)     # side by side, so the bars do not overlap
    xy = [px(n, m, shift) for n, m, _ in pts]
    if len(xy) > 1:
      d.line(xy, fill=color, width=2)
    for (n, m, s), (x, y) in zip(pts, xy, strict=True):
      _, ya = px(n, min(m + s, 1.0))
      _, yb = px(n, max(m - s, lo_y))
      d.line([x, ya, x, yb], fill=color)
      d.line([x - 3, ya, x + 3, ya], fill=color)
      d.line([x - 3, yb, x + 3, yb], fill=color)
      d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
    ly = y0 + 10 + 18 * k
    d.line([x0 + pw + 15, ly + 6, x0 + pw + 40, ly + 6], fill=color, width=2)
    label = "synthetic only (TSTR)" if ratio == "tstr" else f"real + {ratio}x synthetic"
    d.text((x0 + pw + 45, ly), label, fill="black")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  img.save(path)
  return path
