"""The run loop shared by every trainer: mesh, data, resume, logging, NaN guard.

`train` resumes from the workdir's latest checkpoint when there is one, so
rerunning the same command after a crash continues where it stopped. The
loop keeps per-step metrics on device and fetches them only at log and
checkpoint steps; a non-finite loss stops the run there, naming the first bad
step, before anything after it is saved.
"""
import contextlib
import dataclasses
import functools
import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config_lib, errors, parallel, provenance, registry, types
from gen_jax.data import pipeline, sources, variants
from gen_jax.evaluators import run_evals
from gen_jax.utils import ckpt, images, writers


@dataclasses.dataclass
class Run:
  """Everything built from a config for one workdir."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  train_data: sources.Split
  family: types.Family
  trainer: object
  checkpointer: ckpt.Checkpointer
  abstract_state: types.TrainState
  base_rng: jax.Array

  @property
  def x_shape(self) -> tuple:
    return tuple(self.train_data.x.shape[1:])

  @functools.cached_property
  def sample_fn(self):
    """jit(family.sample): (params, state, rng, n) -> f32[n, ...]; compiled once per n."""
    return jax.jit(self.family.sample, static_argnums=3)

  @functools.cached_property
  def reconstruct_fn(self):
    """jit(decode(encode(x))): (params, state, x) -> f32[B, ...] decoder means."""
    family = self.family
    return jax.jit(lambda p, s, x: family.decode(p, s, family.encode(p, s, x)))

  def close(self) -> None:
    """Waits for pending checkpoint saves and releases the checkpoint manager."""
    self.checkpointer.close()


def setup(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Validates the config, loads training data and builds family and trainer."""
  config_lib.validate(config)
  trainer_module = registry.trainer_module(config.trainer)
  family_module = registry.family_module(config.family)
  d = config.data
  sources.check_name(d.name)
  train = sources.load(d.name, d.train_split, d.path, d.download)
  variants.check(d.variant, train.binary, d.name, train.continuous)
  for ec in config.evals.values():
    registry.evaluator_module(ec.type)  # fail on unknown types before training
  parallel.check_batch(d.batch_size)
  mesh = parallel.make_mesh()
  family = family_module.make(config, tuple(train.x.shape[1:]))
  trainer = trainer_module.make(family, config)
  base_rng = jax.random.key(config.seed)
  example = {"x": jnp.zeros((d.batch_size,) + train.x.shape[1:], jnp.float32)}
  abstract = jax.eval_shape(trainer.init, base_rng, example)
  abstract = ckpt.abstract_like(abstract, parallel.replicated(mesh))
  checkpointer = ckpt.Checkpointer(workdir, config.keep_checkpoints)
  return Run(config, workdir, mesh, train, family, trainer, checkpointer, abstract, base_rng)


def init_or_restore(run: Run, require_checkpoint: bool = False,
                    step: int | None = None) -> types.TrainState:
  """The checkpoint at `step` (default: latest) or, if none, a fresh state."""
  step = run.checkpointer.latest_step() if step is None else step
  if step is None:
    if require_checkpoint:
      raise errors.GenJaxError(
          f"no checkpoint in {run.checkpointer.directory}; train first (--mode train)")
    # Initialize on a real global batch (the first B examples, in model space),
    # so data-dependent initializations (e.g. ActNorm) see data.
    rep = parallel.replicated(run.mesh)
    local = run.config.data.batch_size // jax.process_count()
    start = jax.process_index() * local
    raw = parallel.to_global(run.train_data.x[start:start + local], run.mesh)
    rng = parallel.fold(run.base_rng, "init")

    def init(rng, raw):
      x = variants.apply(run.config.data.variant, raw, parallel.fold(rng, "data"))
      return run.trainer.init(rng, {"x": x})
    return jax.jit(init, out_shardings=rep)(rng, raw)
  if step not in run.checkpointer.all_steps():
    raise errors.GenJaxError(
        f"no checkpoint for step {step}; available: {run.checkpointer.all_steps()}")
  try:
    state, _ = run.checkpointer.restore(step, run.abstract_state)
  except (ValueError, KeyError, TypeError) as e:
    raise errors.GenJaxError(
        f"checkpoint {step} in {run.checkpointer.directory} does not fit this config "
        f"(was the model or optimizer changed?): {str(e).splitlines()[0][:200]}") from e
  return state


def train_step_fn(run: Run):
  """The pure, unjitted step on a raw batch: (ts, {"x": u8[B, ...]}, base_rng) -> (ts, metrics).

  Keys come from (base_rng, ts.step): one for the data variant (e.g. the
  dynamic binarization), one for the trainer's updates.
  """
  variant, trainer = run.config.data.variant, run.trainer

  def one(ts, raw, base_rng):
    rng = jax.random.fold_in(base_rng, ts.step)
    batch = dict(raw, x=variants.apply(variant, raw["x"], parallel.fold(rng, "data")))
    return trainer.step(ts, batch, parallel.fold(rng, "update"))
  return one


def make_step_fn(run: Run, k: int | None = None):
  """jit(k train steps) over the mesh, state donated: (ts, raw[k, B, ...]) -> (ts, metrics[k]).

  k defaults to config.steps_per_dispatch; k > 1 runs the steps in a lax.scan.
  """
  k = run.config.steps_per_dispatch if k is None else k
  one = train_step_fn(run)

  def multi(ts, raw, base_rng):
    if k == 1:
      ts, metrics = one(ts, jax.tree.map(lambda a: a[0], raw), base_rng)
      return ts, jax.tree.map(lambda v: v[None], metrics)
    return jax.lax.scan(lambda t, r: one(t, r, base_rng), ts, raw)

  rep = parallel.replicated(run.mesh)
  return jax.jit(multi, donate_argnums=0, out_shardings=(rep, rep))


def _first_nonfinite(pending):
  """(step, name, value) of the first non-finite metric among pending, or None."""
  for start, metrics in pending:
    host = jax.device_get(metrics)
    for i in range(len(next(iter(host.values())))):
      for name, values in host.items():
        if not np.isfinite(values[i]):
          return start + i + 1, name, float(values[i])
  return None


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def log(msg: str) -> None:
  if parallel.is_main():
    print(msg, flush=True)


def _samples(run: Run, ts: types.TrainState) -> np.ndarray:
  """config.num_samples samples from a fixed key (EMA params when present), on host."""
  rng = parallel.fold(run.base_rng, "samples")
  return np.asarray(parallel.to_host(
      run.sample_fn(ts.eval_params(), ts.state, rng, run.config.num_samples)))


def write_images(run: Run, ts: types.TrainState, step: int) -> None:
  """Sample grid (and reconstructions, when the family has encode/decode)."""
  cfg = run.config
  params = ts.eval_params()
  x = _samples(run, ts)
  if parallel.is_main():
    images.save_samples(os.path.join(run.workdir, "samples", f"samples_{step:08d}.png"),
                        x, extent=run.config.get("plot_extent") or None)
  if run.family.encode is None or run.family.decode is None:
    return
  n = min(32, len(run.train_data))
  raw = jnp.asarray(run.train_data.x[:n])
  xin = variants.apply(cfg.data.variant, raw, parallel.fold(run.base_rng, "recon"))
  recon = run.reconstruct_fn(params, ts.state, xin)
  both = np.concatenate([np.asarray(xin), np.asarray(recon)])
  if parallel.is_main():
    images.save_grid(os.path.join(run.workdir, "samples", f"reconstructions_{step:08d}.png"),
                     both, rows=8)


@contextlib.contextmanager
def _sigterm_raises_keyboard_interrupt():
  """Turns SIGTERM (preemption, `kill`, a scheduler's time limit) into KeyboardInterrupt."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    del frame
    raise KeyboardInterrupt(f"signal {signum}")

  old = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, old)


def _save_on_interrupt(run: Run, ts, meta: dict, unchecked: list) -> int | None:
  """Checkpoints the state reached when a run is interrupted; returns its step.

  Nothing is saved if a metric since the last check is non-finite, or if the
  interrupt arrived while the step was being dispatched (its input buffers
  are donated, so the state is gone): the last periodic checkpoint stands.
  """
  try:
    step = int(jax.device_get(ts.step))
    if _first_nonfinite(unchecked) is not None:
      return None
    if step not in run.checkpointer.all_steps():
      run.checkpointer.save(step, ts, {**meta, "step": step})
    run.checkpointer.wait()
    return step
  except RuntimeError:   # deleted (donated) buffers
    return None


def save_config(config, workdir: str) -> None:
  if parallel.is_main():
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming if possible), checkpoints, and evaluates at the end.

  Returns the final evaluation results (or {} when eval_at_end is False).
  """
  run = setup(config, workdir)
  ts = init_or_restore(run)
  start = int(jax.device_get(ts.step))
  save_config(config, workdir)
  writer = writers.MetricWriter(workdir, resume_step=start)
  recorder = provenance.Recorder(workdir, start)
  total, k = config.total_steps, config.steps_per_dispatch
  if start:
    log(f"resumed from {run.checkpointer.directory} at step {start}")
  arrays = {"x": run.train_data.x}
  if config.data.get("labels", False):   # supervised families (the classifier) read y
    if run.train_data.y is None:
      raise errors.ConfigError(f"data.labels is set but {config.data.name!r} has no labels")
    arrays["y"] = run.train_data.y
  loader = pipeline.Loader(arrays, config.data.batch_size, config.seed,
                           jax.process_index(), jax.process_count())
  step_fn = make_step_fn(run)
  meta = {"config": json.loads(config.to_json_best_effort())}
  pending, unchecked, step = [], [], start
  t_log, s_log, t0 = time.time(), start, time.time()
  try:
    try:
      with _sigterm_raises_keyboard_interrupt():
        while step < total:
          raw = parallel.to_global(loader.batches(step, k), run.mesh, batch_dim=1)
          ts, metrics = step_fn(ts, raw, run.base_rng)
          pending.append((step, metrics))
          unchecked.append((step, metrics))
          step += k
          is_log = step % config.log_every_steps == 0 or step == total
          is_ckpt = step % config.ckpt_every_steps == 0 or step == total
          if is_log or is_ckpt:
            bad, unchecked = _first_nonfinite(unchecked), []
            if bad is not None:
              run.checkpointer.wait()
              raise errors.NonFiniteLossError(
                  f"non-finite {bad[1]}={bad[2]} at step {bad[0]}; training stopped. "
                  f"Last good checkpoint: step {run.checkpointer.latest_step()} in "
                  f"{run.checkpointer.directory}")
          if is_log:
            means = {n: float(np.mean(v)) for n, v in jax.device_get(
                _stack([m for _, m in pending])).items()}
            now = time.time()
            rate = (step - s_log) / max(now - t_log, 1e-9)
            writer.write(step, {**means, "steps_per_sec": rate})
            order = sorted(means, key=lambda n: (not n.endswith("loss"), n))
            shown = " | ".join(f"{n} {means[n]:.4g}" for n in order[:4])
            log(f"step {step}/{total} | {shown} | {rate:.1f} steps/s | "
                f"ETA {_fmt_time((total - step) / max(rate, 1e-9))}")
            t_log, s_log = now, step
            pending = []
          if is_ckpt:
            run.checkpointer.save(step, ts, {**meta, "step": step})
          if config.sample_every_steps and step % config.sample_every_steps == 0 and step < total:
            write_images(run, ts, step)
    except KeyboardInterrupt:
      saved = _save_on_interrupt(run, ts, meta, unchecked)
      where = run.checkpointer.directory
      log(f"interrupted: checkpoint at step {saved} in {where}; rerun the same command to "
          f"resume" if saved is not None else
          f"interrupted: the last checkpoint is step {run.checkpointer.latest_step()} in {where}")
      if saved is not None:
        recorder.finish(saved, time.time() - t0, len(run.train_data), interrupted=True)
      raise
    run.checkpointer.wait()
    train_seconds = time.time() - t0
    if step > start:
      log(f"trained {step - start} steps in {_fmt_time(train_seconds)}")
    write_images(run, ts, step)
    results = run_evals(run, ts, step, writer) if config.eval_at_end else {}
    recorder.finish(step, train_seconds, len(run.train_data))
  finally:
    writer.close()
    run.close()
  return results


def _stack(metric_list):
  return jax.tree.map(lambda *v: jnp.concatenate(v), *metric_list)


def evaluate(config, workdir: str, step: int | None = None) -> dict:
  """Runs config.evals on a checkpoint (default: the latest)."""
  run = setup(config, workdir)
  ts = init_or_restore(run, require_checkpoint=True, step=step)
  step = int(jax.device_get(ts.step))
  writer = writers.MetricWriter(workdir)
  try:
    write_images(run, ts, step)
    return run_evals(run, ts, step, writer)
  finally:
    writer.close()
    run.close()


def sample(config, workdir: str, step: int | None = None) -> str:
  """Writes a sample grid PNG and an npz of samples from a checkpoint."""
  run = setup(config, workdir)
  ts = init_or_restore(run, require_checkpoint=True, step=step)
  step = int(jax.device_get(ts.step))
  x = _samples(run, ts)
  run.close()
  path = os.path.join(workdir, "samples", f"samples_{step:08d}")
  if parallel.is_main():
    images.save_samples(path + ".png", x, extent=config.get("plot_extent") or None)
    np.savez_compressed(path + ".npz", samples=x)
    log(f"wrote {path}.png and .npz ({config.num_samples} samples, step {step})")
  return path + ".png"
