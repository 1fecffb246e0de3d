"""The generic trainer: player isolation, EMA, scan, NaN guard, devices, resume."""
import functools
import json
import os
import re
import signal
import time

import conftest
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import REPO, experiment, run_main

from gen_jax import config_lib, errors, optim, registry
from gen_jax.trainers import loop, sgd
from gen_jax.utils import writers

pytestmark = pytest.mark.usefixtures("cheap_compiles")   # tiny models: compiling is the cost
QUICK = experiment("quickstart.py:smoke")


@pytest.fixture
def toy(monkeypatch):
  monkeypatch.syspath_prepend(os.path.join(REPO, "tests"))
  monkeypatch.setitem(registry.FAMILIES, "toy", "toy_family")

  def config(**model):
    c = config_lib.load_config(QUICK)
    c.family = "toy"
    c.model = ml_collections.ConfigDict(model)
    c.evals = ml_collections.ConfigDict()
    return c
  return config


def _sgd(lr):
  return optim.adam(lr, name="sgd")


def test_players_update_in_order_and_only_their_own_params(toy):
  config = toy(kind="two_player", updates_a=2)
  config.optim = ml_collections.ConfigDict({"a": _sgd(0.1), "b": _sgd(0.3)})
  import toy_family  # pylint: disable=g-import-not-at-top
  family = toy_family.make(config, None)
  trainer = sgd.make(family, config)
  x = jax.random.uniform(jax.random.key(0), (8, 4, 4, 1))
  ts = jax.jit(trainer.init)(jax.random.key(1), {"x": x})
  new, metrics = trainer.step(ts, {"x": x}, jax.random.key(2))
  # The same updates by hand: two SGD steps on a (b fixed), then one on b (a fixed).
  wa, wb = ts.params["a"]["w"], ts.params["b"]["w"]
  for _ in range(2):
    wa = wa - 0.1 * jax.grad(lambda w: family.loss(
        "a", {"a": {"w": w}, "b": {"w": wb}}, ts.state, {"x": x}, None)[0])(wa)
  wb = wb - 0.3 * jax.grad(lambda w: family.loss(
      "b", {"a": {"w": wa}, "b": {"w": w}}, ts.state, {"x": x}, None)[0])(wb)
  np.testing.assert_allclose(new.params["a"]["w"], wa, rtol=1e-6)
  np.testing.assert_allclose(new.params["b"]["w"], wb, rtol=1e-6)
  assert int(new.state["calls"]) == 3          # non-gradient state threaded through
  assert int(new.step) == 1 and set(metrics) >= {"a/loss", "b/loss", "a/w_norm"}


def test_a_player_update_never_changes_the_other_player(toy):
  config = toy(kind="two_player", updates_a=1)
  config.optim = ml_collections.ConfigDict({"a": _sgd(0.1), "b": optim.adam(0.1, name="frozen")})
  import toy_family  # pylint: disable=g-import-not-at-top
  trainer = sgd.make(toy_family.make(config, None), config)
  x = jnp.ones((4, 4, 4, 1))
  ts = jax.jit(trainer.init)(jax.random.key(1), {"x": x})
  new, _ = trainer.step(ts, {"x": x}, jax.random.key(2))
  np.testing.assert_array_equal(new.params["b"]["w"], ts.params["b"]["w"])
  assert not np.allclose(new.params["a"]["w"], ts.params["a"]["w"])


def test_ema_follows_the_recursion(toy):
  config = toy(kind="two_player", updates_a=1)
  config.optim = ml_collections.ConfigDict({"a": _sgd(0.1), "b": _sgd(0.1)})
  config.ema_decay = 0.9
  import toy_family  # pylint: disable=g-import-not-at-top
  trainer = sgd.make(toy_family.make(config, None), config)
  x = jnp.ones((4, 4, 4, 1))
  ts = jax.jit(trainer.init)(jax.random.key(1), {"x": x})
  expected = ts.params
  for i in range(3):
    ts, _ = trainer.step(ts, {"x": x}, jax.random.key(i))
    expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, expected, ts.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ts.ema, expected)
  assert ts.eval_params() is ts.ema


def test_nan_stops_training_naming_the_step_and_keeps_last_good_checkpoint(toy, tmp_path):
  config = toy(kind="diverge", scale=1.0)
  config.optim = ml_collections.ConfigDict({"model": _sgd(1000.0)})
  config.update(total_steps=40, steps_per_dispatch=1, log_every_steps=5, ckpt_every_steps=5)
  with pytest.raises(errors.NonFiniteLossError) as e:
    loop.train(config, str(tmp_path))
  # w_t = (-1999)^t: |w|^2 and the gradient norm overflow float32 within ~7 steps.
  match = re.search(r"non-finite (loss|grad_norm)=inf at step (\d+); training stopped. "
                    r"Last good checkpoint: step (\d+)", str(e.value))
  assert match, str(e.value)
  bad, good = int(match.group(2)), int(match.group(3))
  assert 3 <= bad <= 13 and good == (bad - 1) // 5 * 5
  run = loop.setup(config, str(tmp_path))
  ts = loop.init_or_restore(run)
  assert int(ts.step) == good and np.all(np.isfinite(ts.params["model"]["w"]))
  assert run.checkpointer.all_steps()[-1] == good   # nothing after the bad step saved
  run.close()


def test_nan_before_the_first_checkpoint_says_none_was_saved(toy, tmp_path):
  config = toy(kind="diverge", scale=1.0)
  config.optim = ml_collections.ConfigDict({"model": _sgd(1000.0)})
  config.update(total_steps=40, steps_per_dispatch=1, log_every_steps=5, ckpt_every_steps=40)
  with pytest.raises(errors.NonFiniteLossError,
                     match=r"at step \d+; training stopped. No checkpoint was saved before it"):
    loop.train(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


def _final_params(workdir, config_spec=QUICK, overrides=()):
  config = config_lib.load_config(config_spec, list(overrides))
  run = loop.setup(config, workdir)
  ts = loop.init_or_restore(run, require_checkpoint=True)
  run.close()
  return ts


def test_scanned_steps_match_single_steps(tmp_path):
  common = ["eval_at_end=false", "total_steps=8", "log_every_steps=8", "ckpt_every_steps=8"]
  for k in (1, 4):
    config = config_lib.load_config(QUICK, common + [f"steps_per_dispatch={k}"])
    loop.train(config, str(tmp_path / f"k{k}"))
  a = _final_params(str(tmp_path / "k1"), overrides=common)
  b = _final_params(str(tmp_path / "k4"), overrides=common)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
               a.params, b.params)


def test_periodic_evaluations_skip_the_evals_marked_periodic_false(tmp_path):
  """eval_every_steps writes a learning curve of the periodic evals; an eval with
  periodic = False runs only at the end."""
  config = config_lib.load_config(QUICK, ["total_steps=8", "log_every_steps=4",
                                          "ckpt_every_steps=8", "eval_every_steps=4"])
  config.evals.once = ml_collections.ConfigDict(dict(config.evals.test_ll.to_dict(),
                                                     periodic=False))
  loop.train(config, str(tmp_path))
  evals = {r["step"]: {k.split("/")[0] for k in r}
           for r in writers.read_jsonl(os.path.join(str(tmp_path), "metrics.jsonl"))
           if any(k.startswith("test_ll/") for k in r)}
  assert sorted(evals) == [4, 8]
  assert "once" not in evals[4] and "once" in evals[8]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


DEVICE_ARGS = ["--config", QUICK, "--config.data.batch_size=96", "--config.log_every_steps=2",
               "--config.eval_at_end=False"]


@pytest.mark.slow
def test_two_processes_of_four_devices_match_one_device(tmp_path):
  """Data parallelism over 8 devices in 2 processes (gloo collectives) gives one device's
  losses and parameters; each process writes its shards, and the checkpoint restores on
  one process. (One process of 8 devices is the GPT mesh test's and the EM test's.)"""
  with conftest.xla_optimizations(False):   # as the child processes compile
    config = config_lib.load_config(QUICK, ["data.batch_size=96", "log_every_steps=2",
                                            "eval_at_end=False"])
    loop.train(config, str(tmp_path / "d1"))
  port = 20000 + os.getpid() % 20000
  dist = ["--config.distributed.enabled=True",
          f"--config.distributed.coordinator_address=127.0.0.1:{port}",
          "--config.distributed.num_processes=2", "--config.distributed.cpu_collectives=gloo"]
  procs = [run_main(DEVICE_ARGS + dist + ["--workdir", str(tmp_path / "mp"),
                                          f"--config.distributed.process_id={i}"],
                    devices=4, popen=True, stdout=open(tmp_path / f"p{i}.log", "w"),
                    stderr=open(tmp_path / f"p{i}.err", "w"))
           for i in range(2)]
  for p in procs:
    assert p.wait(timeout=300) == 0, (tmp_path / "p0.err").read_text()[-2000:]
  mp, one = _losses(str(tmp_path / "mp")), _losses(str(tmp_path / "d1"))
  assert sorted(mp) == sorted(one) == list(range(2, 21, 2))
  np.testing.assert_allclose([mp[s] for s in one], [one[s] for s in one], rtol=1e-5)
  a = _final_params(str(tmp_path / "mp"), overrides=["data.batch_size=96"])
  b = _final_params(str(tmp_path / "d1"), overrides=["data.batch_size=96"])
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
               a.params, b.params)


@pytest.mark.slow
def test_sigkill_then_sigterm_then_resume_is_bit_identical(tmp_path):
  """One run killed (SIGKILL) after a periodic checkpoint, resumed, interrupted (SIGTERM)
  where no periodic checkpoint falls, and resumed to the end: the parameters and
  optimizer state equal an uninterrupted run's, bit for bit."""
  total = 2000
  args = ["--config", QUICK, f"--config.total_steps={total}", "--config.log_every_steps=20",
          "--config.eval_at_end=False"]
  # 4 x 2,000 steps: compute. The four processes compile the same programs: the later
  # three read them from the session's compilation cache (conftest) the first one fills.
  run_main = functools.partial(conftest.run_main, optimized=True)
  ref = run_main(args + ["--workdir", str(tmp_path / "ref"), f"--config.ckpt_every_steps={total}"])
  assert ref.returncode == 0, ref.stderr[-2000:]
  run, ckdir = tmp_path / "run", tmp_path / "run" / "checkpoints"

  # 1. SIGKILL once a periodic checkpoint at step >= 60 is complete.
  proc = run_main(args + ["--workdir", str(run), "--config.ckpt_every_steps=20"], popen=True,
                  stdout=open(tmp_path / "k.log", "w"), stderr=open(tmp_path / "k.err", "w"))
  deadline = time.time() + 120
  while time.time() < deadline:
    done = [int(d) for d in os.listdir(ckdir) if d.isdigit()] if ckdir.exists() else []
    if max(done, default=0) >= 60:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
  assert killed_at < total, "the run finished before it was killed; kill earlier"
  start = max(int(d) for d in os.listdir(ckdir) if d.isdigit())   # the newest complete one

  # 2. Resume with no periodic checkpoint before the end: only SIGTERM can save mid-run.
  log = tmp_path / "s.log"
  proc = run_main(args + ["--workdir", str(run), f"--config.ckpt_every_steps={total}"],
                  popen=True, stdout=open(log, "w"), stderr=open(tmp_path / "s.err", "w"))
  deadline = time.time() + 120
  while time.time() < deadline and f"step {start + 40}/" not in log.read_text():
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 130
  text = log.read_text()
  assert f"resumed from {run}/checkpoints at step {start}" in text.replace(
      os.path.abspath(run), str(run)), text[-2000:]
  saved = max(int(d) for d in os.listdir(ckdir) if d.isdigit())
  assert start + 40 <= saved < total, (start, saved)
  assert f"interrupted: checkpoint at step {saved}" in text
  record = json.loads((run / "run_info.jsonl").read_text().splitlines()[-1])
  assert record["interrupted"] and record["end_step"] == saved

  # 3. Resume to the end.
  resumed = run_main(args + ["--workdir", str(run), f"--config.ckpt_every_steps={total}"])
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f"at step {saved}" in resumed.stdout
  a, b = _final_params(str(tmp_path / "ref")), _final_params(str(run))
  assert int(a.step) == int(b.step) == total
  jax.tree.map(np.testing.assert_array_equal, (a.params, a.opt_state), (b.params, b.opt_state))
  steps = [r["step"] for r in writers.read_jsonl(str(run / "metrics.jsonl"))]
  assert steps == sorted(set(steps)), "resumed metrics must not repeat steps"
