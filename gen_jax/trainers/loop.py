"""The run loop shared by every trainer: mesh, data, resume, logging, NaN guard.

`train` resumes from the workdir's newest checkpoint that verifies (see
`gen_jax.utils.ckpt`), so rerunning the same command after a crash continues
where it stopped; a damaged checkpoint is named and skipped, never trained
on. Everything a run will need (config values, data shapes, eval splits and
evaluator keys, a writable workdir, a resume config that matches the run's
config.json) is checked before the first step, so a mistake is one line at
once rather than a traceback after hours. The loop keeps per-step metrics on
device and fetches them only at log and checkpoint steps; a non-finite loss
stops the run there, naming the first bad step, before anything after it is
saved.
"""
import contextlib
import dataclasses
import glob
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
from gen_jax.data import spec as spec_lib
from gen_jax.evaluators import context, run_evals
from gen_jax.trainers import checks
from gen_jax.utils import ckpt, host_memory, images, locks, sample_files, writers


@dataclasses.dataclass
class Run:
  """Everything built from a config for one workdir."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  train_data: sources.Split
  loader: object                 # pipeline.train_loader: .spec, .first(), .batches(step, k)
  family: types.Family
  trainer: object
  checkpointer: ckpt.Checkpointer
  abstract_state: types.TrainState
  shardings: object              # a NamedSharding per TrainState leaf
  base_rng: jax.Array

  @property
  def spec(self) -> dict:
    """Raw per-example fields of the training batches."""
    return self.loader.spec

  @property
  def train_examples(self) -> int:
    """Examples per epoch: a text stream counts one example per block of tokens."""
    n = len(self.train_data)
    return n // self.config.data.block_size if self.train_data.stream else n

  def close(self) -> None:
    """Waits for pending checkpoint saves and releases the checkpoint manager."""
    self.checkpointer.close()


def precision(config: ml_collections.ConfigDict):
  """The context a run's arrays live in: float64 when config.x64, else float32.

  `train`, `evaluate` and `sample` enter it themselves; code that calls `setup`
  and `init_or_restore` directly (notebooks, tests) wraps them in it, or an
  x64 run's checkpoints will not match the float32 state it expects.
  """
  return jax.enable_x64(bool(config.get("x64", False)))


def setup(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Validates the config and data, loads training data and builds family and trainer.

  The data spec of the training batches decides the init batch, the batch
  sharding and the model-space view; `config.mesh` and `config.sharding` decide
  how the state is laid out over devices. Nothing is written: the workdir
  need not exist.
  """
  config_lib.validate(config)
  checks.check_workdir(workdir)
  host_memory.retain_freed_memory()
  trainer_module = registry.trainer_module(config.trainer)
  family_module = registry.family_module(config.family)
  d = config.data
  sources.check_name(d.name)
  # The training split as the loader sees it (data.classes kept), so epochs count it.
  train = pipeline.keep_classes(sources.from_config(d, d.train_split), d)
  variants.check(d.variant, train.binary, d.name, train.kind)
  for name, ec in config.evals.items():
    module = registry.evaluator_module(ec.type)  # fail on unknown types before training
    if hasattr(module, "check"):
      module.check(name, ec, config)
  mesh = parallel.make_mesh(config.mesh.data, config.mesh.model)
  if d.batch_size:
    parallel.check_batch(d.batch_size, mesh)
  loader = pipeline.train_loader(train, d, config.seed, jax.process_index(),
                                 jax.process_count(), multiple=mesh.shape[parallel.AXIS])
  checks.check_vocab(workdir, loader.spec)
  checks.check_eval_splits(config, train)
  family = family_module.make(config, variants.model_spec(d.variant, loader.spec))
  trainer = trainer_module.make(family, config)
  base_rng = jax.random.key(config.seed)
  raw = spec_lib.abstract_batch(loader.spec, loader.global_batch)
  example = jax.eval_shape(
      lambda b, r: variants.apply_batch(d.variant, b, loader.spec, r), raw, base_rng)
  abstract = jax.eval_shape(trainer.init, base_rng, example)
  shardings = parallel.state_shardings(abstract, mesh, config.sharding, family.sharding_rules)
  abstract = ckpt.abstract_like(abstract, shardings)
  checkpointer = ckpt.Checkpointer(workdir, config.keep_checkpoints)
  return Run(config, workdir, mesh, train, loader, family, trainer, checkpointer, abstract,
             shardings, base_rng)


def _fresh_state(run: Run) -> types.TrainState:
  """A new TrainState (with `init_from`'s parameters when set), laid out as `run.shardings`.

  It is initialized on a real global batch (the first B examples, in model
  space), so data-dependent initializations (e.g. ActNorm) see data.
  """
  raw = parallel.to_global(run.loader.first(), run.mesh)
  rng = parallel.fold(run.base_rng, "init")
  variant, spec = run.config.data.variant, run.spec

  fixed_data = isinstance(run.loader, pipeline.WholeSplit)

  def init(rng, raw):   # a whole-split batch: the same variant draw as every step's
    data_rng = jax.random.fold_in(run.base_rng, 0) if fixed_data else rng
    batch = variants.apply_batch(variant, raw, spec, parallel.fold(data_rng, "data"))
    return run.trainer.init(rng, batch)
  ts = jax.jit(init, out_shardings=run.shardings)(rng, raw)
  if run.config.init_from.workdir:
    ts = _init_params_from(run, ts)
  return ts


def _mismatch(run: Run, step: int, e: ckpt.Mismatch) -> errors.ConfigError:
  """The one line for an intact checkpoint of another model: the config keys that differ."""
  keys = config_lib.changed_keys(e.saved_config, run.config) if e.saved_config else []
  why = (f"its config differs in {config_lib.describe_changes(e.saved_config, run.config, keys)}"
         f" ({e})" if keys else str(e))
  return errors.ConfigError(
      f"checkpoint {step} in {run.checkpointer.directory} does not fit this config (was the "
      f"model or optimizer changed?): {why}; use the run's config or another workdir")


def restore(run: Run, step: int | None = None):
  """(state, meta) of checkpoint `step`, or of the newest one that verifies; None if none.

  A damaged checkpoint passed over is named on stderr; `step` given and
  damaged is an error. Folders an interrupted save left and entries that are
  not checkpoints are named too.
  """
  c = run.checkpointer
  listing = c.listing()
  for name in listing.partial:
    checks.warn(f"ignoring {os.path.join(c.directory, name)}: a save that was interrupted "
         f"(it holds no complete checkpoint)")
  for name in listing.foreign:
    checks.warn(f"ignoring {os.path.join(c.directory, name)}: not a checkpoint folder")
  if step is not None:
    if step not in listing.steps:
      raise errors.GenJaxError(
          f"no checkpoint for step {step} in {c.directory}; available: {listing.steps}")
    try:
      found = (step, *c.restore(step, run.abstract_state))
    except ckpt.Damaged as e:
      raise errors.GenJaxError(
          f"checkpoint {step} in {c.directory} is damaged ({e}); pass another --step "
          f"(available: {listing.steps})") from e
    except ckpt.Mismatch as e:
      raise _mismatch(run, step, e) from e
  elif not listing.steps:
    return None
  else:
    try:
      found = c.restore_latest(run.abstract_state, on_skip=lambda s, why: checks.warn(
          f"skipping checkpoint {s} in {c.directory}, damaged: {why}"))
    except ckpt.Mismatch as e:
      raise _mismatch(run, e.step, e) from e
    if found is None:
      raise errors.GenJaxError(
          f"none of the {len(listing.steps)} checkpoints in {c.directory} verifies (see the "
          f"warnings above); move the folder away to start from step 0, or use another workdir")
  step, state, meta = found
  if c.skipped:
    checks.warn(f"using checkpoint {step}, the newest that verifies")
  if not meta["verified"]:
    checks.warn(f"checkpoint {step} in {c.directory} has no checksum (saved by an older gen_jax); "
         f"restored unverified")
  return state, meta


def init_or_restore(run: Run, require_checkpoint: bool = False,
                    step: int | None = None) -> types.TrainState:
  """The checkpoint at `step` (default: the newest that verifies); else `init_from`; else fresh.

  The resume order: 1. this workdir's checkpoint; 2. a fresh state whose
  parameters come from another run's checkpoint (`init_from`: fine-tuning,
  stacking); 3. a fresh state.
  """
  found = restore(run, step)
  if found is not None:
    return found[0]
  if require_checkpoint:
    raise errors.GenJaxError(
        f"no checkpoint in {run.checkpointer.directory}; train first (--mode train)")
  return _fresh_state(run)


def _init_params_from(run: Run, ts: types.TrainState) -> types.TrainState:
  """Copies every parameter array of `init_from`'s checkpoint that this model has.

  Arrays are matched by player and path; a matched path whose shape differs
  is an error, and so is a source sharing no parameter with this model.
  Optimizer state, EMA and non-gradient state start fresh (the EMA from the
  copied parameters). The source checkpoint is verified like a resume's.
  """
  src = run.config.init_from
  source = ckpt.Checkpointer(src.workdir, 1, use_async=False)
  try:
    if src.step < 0:
      found = source.restore_latest(raw=True, on_skip=lambda s, why: checks.warn(
          f"init_from: skipping checkpoint {s} in {source.directory}, damaged: {why}"))
      if found is None:
        what = " that verifies" if source.all_steps() else ""
        raise errors.GenJaxError(f"init_from: no checkpoint{what} in {source.directory}; "
                                 f"train that run first")
      step, saved, _ = found
    else:
      step = src.step
      if step not in source.all_steps():
        raise errors.GenJaxError(f"init_from: no checkpoint {step} in {source.directory}; "
                                 f"train that run first")
      try:
        saved, _ = source.restore_raw(step)
      except ckpt.Damaged as e:
        raise errors.GenJaxError(f"init_from: checkpoint {step} in {source.directory} is "
                                 f"damaged ({e}); choose another init_from.step") from e
  finally:
    source.close()
  params = saved["ema"] if src.get("use_ema", False) and saved.get("ema") else saved["params"]
  flat_src = {parallel.path_str(p): v for p, v in
              jax.tree_util.tree_flatten_with_path(params)[0]}
  copied = []

  def one(path, leaf):
    name = parallel.path_str(path)
    if name not in flat_src:
      return leaf
    value = np.asarray(flat_src[name])
    if value.shape != leaf.shape:
      raise errors.ConfigError(f"init_from: {name} has shape {value.shape} in {src.workdir} "
                               f"but {leaf.shape} here")
    copied.append(name)
    return jax.device_put(value.astype(leaf.dtype), leaf.sharding)
  new_params = jax.tree_util.tree_map_with_path(one, ts.params)
  total = len(jax.tree.leaves(ts.params))
  if not copied:
    raise errors.ConfigError(f"init_from: {src.workdir} (step {step}) shares no parameter "
                             f"path with this model")
  log(f"initialized {len(copied)} of {total} parameter arrays from {src.workdir} at step {step}")
  ema = None if ts.ema is None else new_params
  return ts.replace(params=new_params, ema=ema)


def train_step_fn(run: Run):
  """The pure, unjitted step on a raw batch: (ts, raw batch, base_rng) -> (ts, metrics).

  Keys come from (base_rng, ts.step): one for the data variant (e.g. the
  dynamic binarization), one for the trainer's updates. A whole-split batch
  (data.batch_size = 0) is the same batch at every step, its variant's noise
  included: the data key is step 0's (EM sees one fixed binarization).
  """
  variant, trainer, spec = run.config.data.variant, run.trainer, run.spec
  fixed_data = isinstance(run.loader, pipeline.WholeSplit)

  def one(ts, raw, base_rng):
    rng = jax.random.fold_in(base_rng, ts.step)
    data_rng = jax.random.fold_in(base_rng, 0) if fixed_data else rng
    batch = variants.apply_batch(variant, raw, spec, parallel.fold(data_rng, "data"))
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
  return jax.jit(multi, donate_argnums=0, out_shardings=(run.shardings, rep))


def _first_nonfinite(pending):
  """(step, name, value) of the first non-finite metric among pending, or None."""
  for start, metrics in pending:
    host = jax.device_get(metrics)
    for i in range(len(next(iter(host.values())))):
      for name, values in host.items():
        if not np.isfinite(values[i]):
          return start + i + 1, name, float(values[i])
  return None


def _monitor(trainer, checked, warned: list) -> int | None:
  """Runs the trainer's monitor on checked metrics; prints its warnings; the stop step."""
  if trainer.monitor is None or not checked:
    return None
  stop = None
  for start, metrics in checked:
    warnings, done_at = trainer.monitor(start, jax.device_get(metrics))
    for w in warnings:
      checks.warn(w)
    warned.extend(warnings)
    if done_at is not None and stop is None:
      stop = done_at
  return stop


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def log(msg: str) -> None:
  if parallel.is_main():
    print(msg, flush=True)


def eval_context(run: Run, ts: types.TrainState, writer) -> context.Context:
  """The narrow view of a checkpoint that evaluators and sample writers get."""
  return context.Context(
      family=run.family, params=ts.eval_params(), state=ts.state,
      step=int(jax.device_get(ts.step)), config=run.config, spec=run.spec, mesh=run.mesh,
      rng=run.base_rng, workdir=run.workdir, writer=writer)


def _samples(ctx: context.Context) -> np.ndarray:
  """config.num_samples samples from a fixed key (EMA params when present), on host."""
  return ctx.samples(parallel.fold(ctx.rng, "samples"), ctx.config.num_samples)


def write_samples(ctx: context.Context) -> list[str]:
  """Samples in the format of their modality (and reconstructions for encode/decode families)."""
  field = ctx.family.sample_field
  x = _samples(ctx)
  stem = os.path.join(ctx.workdir, "samples", f"samples_{ctx.step:08d}")
  paths = []
  if parallel.is_main():
    spec = variants.model_spec(ctx.data.variant, ctx.spec)
    paths = sample_files.write(stem, x, spec[field], extent=ctx.config.get("plot_extent"),
                               columns=spec[field].columns)
    if spec[field].modality == "tokens" and ctx.writer is not None:
      ctx.writer.write_text(ctx.step, "samples", sample_files.texts(x[:4], spec[field].vocab)[0])
  if ctx.family.encode is None or ctx.family.decode is None:
    return paths
  raw = {k: jnp.asarray(v) for k, v in ctx.train_examples(32).items()}
  xin = variants.apply_batch(ctx.data.variant, raw, ctx.spec,
                             parallel.fold(ctx.rng, "recon"))[field]
  recon = ctx.reconstruct_fn(ctx.params, ctx.state, xin)
  both = np.concatenate([np.asarray(xin), np.asarray(recon)])
  if parallel.is_main():
    path = os.path.join(ctx.workdir, "samples", f"reconstructions_{ctx.step:08d}.png")
    images.save_grid(path, both, rows=8)
    paths.append(path)
  return paths


@contextlib.contextmanager
def _deferred_stop():
  """SIGTERM or Ctrl-C asks the loop to stop after the step in flight; a second one stops now.

  Stopping between steps keeps the state intact: an exception raised while a
  step is being dispatched would leave its donated input buffers deleted, and
  nothing could be saved. Yields a list that holds the signal once one came.
  """
  requested: list = []
  if threading.current_thread() is not threading.main_thread():
    yield requested
    return

  def handler(signum, frame):
    del frame
    if requested:
      raise KeyboardInterrupt(f"signal {signum}")
    requested.append(signum)
    log("stopping after the current step (signal again to stop at once)")

  old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield requested
  finally:
    for s, h in old.items():
      signal.signal(s, h)


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


def _tidy(run: Run, start: int) -> None:
  """Readies checkpoints/ for the saves of a run that starts at step `start`.

  Damaged folders newer than `start` move to checkpoints_damaged/ (Orbax skips
  saving any step not newer than the newest folder), folders of interrupted
  saves are deleted (they never held a complete checkpoint), and the
  checkpoint just restored gets its file list if a kill had cut it short.
  """
  c = run.checkpointer
  if parallel.is_main():
    if start in c.all_steps():
      c.seal(start)
    for step, _ in c.skipped:
      if step > start:
        checks.warn(f"moved damaged checkpoint {step} to {c.set_aside(step)} (delete it when no "
             f"longer needed)")
    for name in c.listing().partial:
      c.remove_partial(name)
      log(f"removed {os.path.join(c.directory, name)}, left by an interrupted save")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("gen_jax: checkpoints tidied")


PREREQUISITE_LOCK = ".prerequisite.lock"


def train_prerequisites(config: ml_collections.ConfigDict) -> None:
  """Trains the runs evaluators depend on (e.g. a feature classifier) when missing.

  Only for evaluators with `train_missing=True` (smoke configs); otherwise a
  missing run is the evaluator's one-line error naming the command. Processes
  that need the same prerequisite at once (test workers, parallel runs) take
  turns on a lock file in its workdir: one trains it, the others wait and then
  find its checkpoint, never a half-trained one.
  """
  for ec in config.evals.values():
    module = registry.evaluator_module(ec.type)
    if not ec.get("train_missing", False) or not hasattr(module, "prerequisites"):
      continue
    for spec, workdir in module.prerequisites(ec):
      with locks.held(os.path.join(workdir, PREREQUISITE_LOCK)):
        if not glob.glob(os.path.join(workdir, "checkpoints", "[0-9]*")):
          log(f"training {spec} in {workdir} (needed by evals)")
          train(config_lib.load_config(config_lib.resolve(spec)), workdir)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming if possible), checkpoints, and evaluates at the end.

  Returns the final evaluation results (or {} when eval_at_end is False).
  Nothing in the workdir changes until the config, the data, the workdir and
  the checkpoint to resume from have all been checked.
  """
  with precision(config):
    run = setup(config, workdir)
    try:
      return _train(run, config, workdir)
    finally:
      run.close()


def _train(run: Run, config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Checks what setup could not (workdir, resume config), restores, then trains."""
  checks.check_writable(workdir)
  if config.eval_at_end:
    checks.check_eval_batches(config, run.mesh)
  saved = checks.saved_config(workdir)
  changed = []
  if saved is not None and run.checkpointer.all_steps():
    changed = checks.check_config_change(saved, config, os.path.join(workdir, "config.json"))
  found = restore(run)
  if found is None:
    ts = _fresh_state(run)
  else:
    ts, meta = found
    if saved is None and isinstance(meta.get("config"), dict):
      changed = checks.check_config_change(meta["config"], config, "its checkpoint's metadata")
  start = int(jax.device_get(ts.step))
  k = config.steps_per_dispatch
  if start % k:
    raise errors.ConfigError(
        f"checkpoint step {start} is not a multiple of steps_per_dispatch={k}; resume with "
        f"a steps_per_dispatch that divides {start}")
  _tidy(run, start)
  checks.save_config(config, workdir)
  writer = writers.MetricWriter(workdir, resume_step=start)
  try:
    return _loop(run, ts, start, writer, changed)
  finally:
    writer.close()


def _loop(run: Run, ts, start: int, writer, changed: list) -> dict:
  """Steps from `start` to total_steps with logging, checkpoints and the NaN guard."""
  config, workdir = run.config, run.workdir
  total, k = config.total_steps, config.steps_per_dispatch
  recorder = provenance.Recorder(workdir, start)
  where = run.checkpointer.directory
  rows, events = writer.removed
  removed = f"{rows} metric rows and {events} TensorBoard events"
  if start:
    log(f"resumed from {where} at step {start}")
    if rows or events:
      log(f"removed {removed} logged after step {start} by an earlier invocation")
  elif rows or events:
    log(f"starting from step 0: no complete checkpoint in {where}; removed {removed} of "
        f"an earlier attempt")
  checks.save_vocab(run.workdir, run.spec)
  loader = run.loader
  step_fn = make_step_fn(run)
  meta = {"config": json.loads(config.to_json_best_effort())}
  pending, unchecked, step = [], [], start
  t_log, s_log, t0 = time.time(), start, time.time()
  extra = {"config_changed": changed} if changed else {}
  warned: list = []
  try:
    with _deferred_stop() as stop_requested:
      while step < total:
        if stop_requested:
          raise KeyboardInterrupt(f"signal {stop_requested[0]}")
        raw = parallel.to_global(loader.batches(step, k), run.mesh, batch_dim=1)
        ts, metrics = step_fn(ts, raw, run.base_rng)
        pending.append((step, metrics))
        unchecked.append((step, metrics))
        step += k
        is_log = step % config.log_every_steps == 0 or step == total
        is_ckpt = step % config.ckpt_every_steps == 0 or step == total
        if is_log or is_ckpt:
          checked, unchecked = unchecked, []
          done_at = _monitor(run.trainer, checked, warned)   # may raise a family-specific error
          bad = _first_nonfinite(checked)
          if bad is not None:
            run.checkpointer.wait()
            last = run.checkpointer.latest_step()
            raise errors.NonFiniteLossError(
                f"non-finite {bad[1]}={bad[2]} at step {bad[0]}; training stopped. " + (
                    f"Last good checkpoint: step {last} in {where}" if last is not None else
                    "No checkpoint was saved before it; lower the learning rate or check "
                    "the data"))
          if done_at is not None:
            log(f"converged at step {done_at} (em.tol={config.em.tol:g}); stopping at step "
                f"{step}")
            total, is_log, is_ckpt = step, True, True
            extra["converged_at"] = done_at
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
          log(f"saving checkpoint {step} to {run.checkpointer.path(step)}")
        if config.sample_every_steps and step % config.sample_every_steps == 0 and step < total:
          write_samples(eval_context(run, ts, writer))
        if config.eval_every_steps and step % config.eval_every_steps == 0 and step < total:
          run_evals(eval_context(run, ts, writer), periodic=True)   # a learning curve
  except KeyboardInterrupt:
    saved = _save_on_interrupt(run, ts, meta, unchecked)
    last = run.checkpointer.latest_step()
    log(f"interrupted: checkpoint at step {saved} in {where}; rerun the same command to "
        f"resume" if saved is not None else
        f"interrupted: the last checkpoint is step {last} in {where}" if last is not None else
        "interrupted before the first checkpoint; a rerun starts from step 0")
    if saved is not None:
      recorder.finish(saved, time.time() - t0, run.train_examples, interrupted=True, **extra)
    raise
  run.checkpointer.wait()
  if warned:
    extra["warnings"] = warned
  train_seconds = time.time() - t0
  if step > start:
    log(f"trained {step - start} steps in {_fmt_time(train_seconds)}")
  ctx = eval_context(run, ts, writer)
  write_samples(ctx)
  if config.eval_at_end:
    train_prerequisites(config)
  results = run_evals(ctx) if config.eval_at_end else {}
  recorder.finish(step, train_seconds, run.train_examples, **extra)
  return results


def _stack(metric_list):
  return jax.tree.map(lambda *v: jnp.concatenate(v), *metric_list)


def evaluate(config, workdir: str, step: int | None = None) -> dict:
  """Runs config.evals on a checkpoint (default: the newest that verifies)."""
  with precision(config):
    return _evaluate(config, workdir, step)


def _evaluate(config, workdir: str, step: int | None) -> dict:
  checks.check_workdir(workdir, must_exist=True)
  run = setup(config, workdir)
  try:
    checks.check_eval_batches(config, run.mesh)
    checks.check_writable(workdir)
    ts = init_or_restore(run, require_checkpoint=True, step=step)
    recorder = provenance.Recorder(workdir, int(jax.device_get(ts.step)), mode="eval")
    train_prerequisites(config)
    writer = writers.MetricWriter(workdir)
    try:
      ctx = eval_context(run, ts, writer)
      write_samples(ctx)
      results = run_evals(ctx)
    finally:
      writer.close()
    recorder.finish(ctx.step, 0.0, run.train_examples)
    return results
  finally:
    run.close()


def sample(config, workdir: str, step: int | None = None) -> str:
  """Writes samples from a checkpoint in their modality's format, and an npz of them.

  Returns the path of the main file (PNG grid or plot, text, CSV).
  """
  with precision(config):
    return _sample(config, workdir, step)


def _sample(config, workdir: str, step: int | None) -> str:
  checks.check_workdir(workdir, must_exist=True)
  run = setup(config, workdir)
  try:
    checks.check_writable(workdir)
    ts = init_or_restore(run, require_checkpoint=True, step=step)
    recorder = provenance.Recorder(workdir, int(jax.device_get(ts.step)), mode="sample")
    ctx = eval_context(run, ts, None)
    x = _samples(ctx)
  finally:
    run.close()
  stem = os.path.join(workdir, "samples", f"samples_{ctx.step:08d}")
  field = variants.model_spec(config.data.variant, run.spec)[run.family.sample_field]
  paths = [stem + ".png"]
  if parallel.is_main():
    paths = sample_files.write(stem, x, field, extent=config.get("plot_extent"),
                               columns=field.columns)
    np.savez_compressed(stem + ".npz", samples=x)
    log(f"wrote {paths[0]} and {stem}.npz ({config.num_samples} samples, step {ctx.step})")
    if field.modality == "tokens":
      print(sample_files.texts(x[:1], field.vocab)[0], flush=True)
  recorder.finish(ctx.step, 0.0, run.train_examples)
  return paths[0]


