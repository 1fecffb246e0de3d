"""Fault injection: damaged checkpoints and records resume from the newest good step, and
every bad input fails in one line before anything in the workdir changes.

One run of the quickstart smoke (30 steps, checkpoints at 10, 20 and 30) is trained per
module; each case damages a copy of it. Resuming a copy whose step 30 is damaged must
skip it loudly, train 20 -> 30 again and end with the parameters and optimizer state of
the undamaged run, bit for bit.
"""
import contextlib
import glob
import io
import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
from conftest import experiment

from gen_jax import config_lib, main
from gen_jax.trainers import checks, loop
from gen_jax.utils import ckpt, writers

# Orbax work left pending by an error path (an unclosed manager, an unawaited read)
# surfaces as these warnings; here they fail the test that caused them.
pytestmark = [pytest.mark.usefixtures("cheap_compiles"),   # tiny models: compiling is the cost
              pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("error:coroutine .* was never awaited:RuntimeWarning")]

QUICK = experiment("quickstart.py:smoke")
OVERRIDES = ["eval_at_end=False", "total_steps=30", "log_every_steps=10", "ckpt_every_steps=10"]
ARGV = ["--config", QUICK] + [f"--config.{o}" for o in OVERRIDES]


def _config(*extra):
  return config_lib.load_config(QUICK, OVERRIDES + list(extra))


def _restore(workdir, step=None):
  """(state, meta) that a resume of `workdir` would start from, or None."""
  run = loop.setup(_config(), workdir)
  try:
    return loop.restore(run, step)
  finally:
    run.close()


def _host(state):
  return jax.tree.map(np.asarray, (state.params, state.opt_state))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(workdir of the undamaged run, {step: (params, opt_state)} at 20 and 30)."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  loop.train(_config(), workdir)
  return workdir, {s: _host(_restore(workdir, s)[0]) for s in (20, 30)}


def _copy(trained, tmp_path) -> str:
  dest = str(tmp_path / "run")
  shutil.copytree(trained[0], dest)
  return dest


def _same(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _tb_steps(workdir) -> list:
  """(tag, step) of every scalar event in the run's TensorBoard files."""
  out = []
  for path in glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*")):
    with open(path, "rb") as f:
      for _, event in writers._records(f.read()):
        out += [(v.tag, event.step) for v in event.summary.value]
  return out


def _assert_records_end_at_30(workdir):
  steps = [r["step"] for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]
  assert steps == [10, 20, 30], steps
  tb = _tb_steps(workdir)
  assert len(tb) == len(set(tb)) and {s for _, s in tb} == {10, 20, 30}, sorted(tb)


# The file kinds of one checkpoint folder. Damage to any file a restore reads must make
# the checkpoint be skipped (before Orbax reads a garbled file); damage to the commit
# markers, the step metadata or the file list must not cost the checkpoint.
MUST_SKIP = {
    "meta": "meta/metadata",
    "tree_metadata": "state/_METADATA",
    "sharding": "state/_sharding",
    "array_metadatas": "state/array_metadatas/process_0",
    "root_manifest": "state/manifest.ocdbt",
    "root_btree": "state/d/*",
    "process_manifest": "state/ocdbt.process_0/manifest.ocdbt",
    "array_data": "state/ocdbt.process_0/d/<largest>",
    "process_btree": "state/ocdbt.process_0/d/<smallest>",
}
NOT_NEEDED = {
    "step_metadata": "_CHECKPOINT_METADATA",
    "commit_marker": "commit_success.txt",
    "state_commit_marker": "state/commit_success.txt",
    "file_list": ckpt.FILES,
}
DAMAGE = ("flip", "truncate", "zero", "remove")


def _file(step_dir: str, pattern: str) -> str:
  if pattern.endswith(("<largest>", "<smallest>")):
    folder = os.path.join(step_dir, os.path.dirname(pattern))
    pick = max if pattern.endswith("<largest>") else min
    return pick(glob.glob(os.path.join(folder, "*")), key=os.path.getsize)
  (path,) = glob.glob(os.path.join(step_dir, pattern))
  return path


def _damage(path: str, how: str) -> None:
  if how == "remove":
    os.remove(path)
    return
  with open(path, "rb") as f:
    data = bytearray(f.read())
  if how == "truncate":
    data = data[:len(data) // 2]
  elif how == "zero":
    data = bytearray(len(data))
  else:                                    # flip 16 bytes in the middle
    mid = max(len(data) // 2 - 8, 0)
    for i in range(mid, min(mid + 16, len(data))):
      data[i] ^= 0xFF
  with open(path, "wb") as f:
    f.write(bytes(data))


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("kind", list(MUST_SKIP) + list(NOT_NEEDED))
def test_damaged_newest_checkpoint_resumes_from_the_newest_good_one(trained, tmp_path, capsys,
                                                                     kind, how):
  workdir = _copy(trained, tmp_path)
  _damage(_file(os.path.join(workdir, "checkpoints", "30"), {**MUST_SKIP, **NOT_NEEDED}[kind]),
          how)
  loop.train(_config(), workdir)
  out, err = capsys.readouterr()
  if kind in MUST_SKIP:
    assert "skipping checkpoint 30 in" in err and "damaged: " in err, err
    assert "resumed from" in out and "at step 20" in out and "saving checkpoint 30" in out
    assert os.path.isdir(os.path.join(workdir, "checkpoints_damaged", "30"))
  else:
    assert "at step 30" in out and not err, err
  state, meta = _restore(workdir)
  assert int(state.step) == 30 and meta["verified"]
  _same(_host(state), trained[1][30])
  _assert_records_end_at_30(workdir)


def test_a_flipped_value_is_caught_by_the_checksum(trained, tmp_path):
  # Orbax reads a flipped byte inside an array back without error: only the checksum tells.
  workdir = _copy(trained, tmp_path)
  run = loop.setup(_config(), workdir)
  try:
    c = ckpt.Checkpointer(workdir, 3)
    assert c.restore(30, run.abstract_state)[1]["verified"]
    os.remove(os.path.join(c.path(30), ckpt.FILES))   # as if killed before the file list
    assert c.restore(30, run.abstract_state)[1]["verified"]
    _damage(_file(c.path(30), MUST_SKIP["array_data"]), "flip")
    with pytest.raises(ckpt.Damaged, match="do not match the checksum saved with them"):
      c.restore(30, run.abstract_state)
  finally:
    run.close()


@pytest.mark.parametrize("tail", [
    '{"step": 4',                          # a row cut off by a killed process
    '\x00\xff garbage \x01',
    '{"step": 25, "loss": 1.0}\n{"step": 30, "lo',
])
def test_partial_or_garbage_metric_rows_are_dropped_on_resume(trained, tmp_path, tail):
  workdir = _copy(trained, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "30"))
  with open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="latin-1") as f:
    f.write(tail)
  assert [r["step"] for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          ][:3] == [10, 20, 30]
  loop.train(_config(), workdir)
  _assert_records_end_at_30(workdir)
  _same(_host(_restore(workdir)[0]), trained[1][30])


def test_run_killed_before_its_first_checkpoint_starts_over_and_says_so(trained, tmp_path,
                                                                         capsys):
  workdir = _copy(trained, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")
  for step in ("10", "20", "30"):
    shutil.rmtree(os.path.join(ckdir, step))
  partial = os.path.join(ckdir, "10.orbax-checkpoint-tmp-1234")
  os.makedirs(os.path.join(partial, "state"))
  loop.train(_config(), workdir)
  out, err = capsys.readouterr()
  assert "starting from step 0: no complete checkpoint in" in out
  assert "removed 3 metric rows and" in out
  assert "a save that was interrupted" in err and not os.path.exists(partial)
  _assert_records_end_at_30(workdir)
  _same(_host(_restore(workdir)[0]), trained[1][30])


@pytest.mark.parametrize("damage, reason", [
    ("empty_40", "checkpoint 40 in .*, damaged: empty folder"),
    ("no_state", "checkpoint 30 in .*, damaged: missing state"),
    ("no_meta", "checkpoint 30 in .*, damaged: missing meta"),
    ("foreign", "ignoring .*notes: not a checkpoint folder"),
])
def test_damaged_and_foreign_folders_are_named_for_what_they_are(trained, tmp_path, capsys,
                                                                 damage, reason):
  workdir = _copy(trained, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")
  if damage == "empty_40":
    os.makedirs(os.path.join(ckdir, "40"))
  elif damage == "foreign":
    os.makedirs(os.path.join(ckdir, "notes"))
  else:
    shutil.rmtree(os.path.join(ckdir, "30", damage[3:]))
  assert main.main(ARGV + ["--workdir", workdir, "--mode", "sample"]) == 0
  out, err = capsys.readouterr()
  assert re.search(reason, err), err
  assert "does not fit" not in err
  good = 20 if damage.startswith("no_") else 30
  assert f"step {good})" in out
  record = json.loads(open(os.path.join(workdir, "run_info.jsonl")).read().splitlines()[-1])
  assert record["mode"] == "sample" and record["end_step"] == good


def _snapshot(workdir) -> dict:
  out = {}
  for path in glob.glob(os.path.join(workdir, "**"), recursive=True):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = f.read()
  return out


def _one_error_line(capsys, argv) -> str:
  code = main.main(argv)
  out, err = capsys.readouterr()
  lines = [line for line in err.strip().splitlines() if not line.startswith("WARNING: ")]
  assert code == 2, (out, err)
  assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
  return lines[0]


def test_no_checkpoint_that_verifies_is_one_line(trained, tmp_path, capsys):
  workdir = _copy(trained, tmp_path)
  for step in (10, 20, 30):
    _damage(_file(os.path.join(workdir, "checkpoints", str(step)), MUST_SKIP["array_data"]),
            "zero")
  before = _snapshot(workdir)
  for mode in ("train", "eval", "sample"):
    line = _one_error_line(capsys, ARGV + ["--workdir", workdir, "--mode", mode])
    assert "none of the 3 checkpoints in" in line and "verifies" in line
  assert _snapshot(workdir) == before
  line = _one_error_line(capsys, ARGV + ["--workdir", workdir, "--mode", "eval", "--step", "20"])
  assert "checkpoint 20 in" in line and "is damaged" in line


@pytest.fixture(scope="module")
def untouched(trained, tmp_path_factory):
  """A copy of the trained run that the one-line cases below must leave as it is."""
  dest = str(tmp_path_factory.mktemp("untouched") / "run")
  shutil.copytree(trained[0], dest)
  return dest, _snapshot(dest)


@pytest.mark.parametrize("tail, expected", [
    (["--config.data.batch_size=-4"],
     r"data\.batch_size must be >= 1, or 0 for the whole split \(got -4\)"),
    (["--config.trainer=em", "--config.data.batch_size=0"],
     r"family 'vae' has no closed-form EM; use trainer 'sgd'"),
    (["--config.keep_checkpoints=0"], r"keep_checkpoints must be >= 1 \(got 0\)"),
    (["--config.optim.model.lr=nan"], r"optim\.model\.lr must be a finite number > 0 \(got nan\)"),
    (["--config.optim.model.lr=inf"], r"optim\.model\.lr must be a finite number > 0 \(got inf\)"),
    (["--config.optim.model.lr=-0.001"], r"optim\.model\.lr must be a finite number > 0"),
    (["--config.evals.test_ll.batch_size=0"], r"evals\.test_ll\.batch_size must be >= 1"),
    (["--config.evals.test_ll.kwargs.k=25"],
     r"k=25 must be a multiple of chunk=10; set --config\.evals\.test_ll\.kwargs\.chunk=5"),
    (["--config.data.eval_split=tset"], r"data\.eval_split='tset': unknown split of digits"),
    (["--config.seed=1"], r"differs from the run's \(.*config\.json\) in seed 0 -> 1; use "
                          r"another workdir, or pass --config\.allow_config_change=True"),
    (["--config.optim.model.lr=0.01"], r"in optim\.model\.lr 0\.001 -> 0\.01; "),
    (["--config.model.hidden=(64,64)"], r"in model\.hidden \[128, 128\] -> \[64, 64\]; "),
    (["--config.model.hidden=(64,64)", "--mode=eval"],
     r"does not fit this config \(was the model or optimizer changed\?\): its config differs "
     r"in model\.hidden \[128, 128\] -> \[64, 64\] \(params/model/.* is float32\[128\] in the "
     r"checkpoint but float32\[64\] here\)"),
    (["--mode=eval", "--step=15"], r"no checkpoint for step 15 in .*; available: \[10, 20, 30\]"),
])
def test_bad_inputs_give_one_line_and_leave_the_workdir_unchanged(untouched, capsys, tail,
                                                                  expected):
  workdir, before = untouched
  line = _one_error_line(capsys, ARGV + ["--workdir", workdir] + tail)
  assert re.search(expected, line), line
  assert _snapshot(workdir) == before


def test_allowed_config_changes_resume_and_others_need_the_override(trained, tmp_path, capsys):
  workdir = _copy(trained, tmp_path)
  longer = ARGV + ["--workdir", workdir, "--config.total_steps=40", "--config.num_samples=16",
                   "--config.keep_checkpoints=5", "--config.log_every_steps=20"]
  assert main.main(longer) == 0
  assert "at step 30" in capsys.readouterr().out
  assert main.main(longer + ["--config.total_steps=50", "--config.seed=1",
                             "--config.allow_config_change=True"]) == 0
  err = capsys.readouterr().err
  assert "differs from the run's" in err and "seed 0 -> 1" in err
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["seed"] == 1
  record = json.loads(open(os.path.join(workdir, "run_info.jsonl")).read().splitlines()[-1])
  assert record["config_changed"] == ["seed"] and record["end_step"] == 50


def _npz(tmp_path, name, **arrays) -> str:
  path = str(tmp_path / f"{name}.npz")
  np.savez(path, **arrays)
  return path


def _u8(*shape):
  return np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)


@pytest.mark.parametrize("name, arrays, expected", [
    ("one_d", dict(x_train=_u8(200), x_test=_u8(50)), r"must be images u8\[N, H, W\]"),
    ("two_d", dict(x_train=_u8(200, 64), x_test=_u8(50, 64)), r"got shape \(200, 64\)"),
    ("five_d", dict(x_train=_u8(200, 8, 8, 1, 1)), r"got shape \(200, 8, 8, 1, 1\)"),
    ("empty", {}, "has no array 'x_train'; arrays present: none"),
    ("no_examples", dict(x_train=_u8(0, 8, 8)), "x_train holds no examples"),
    ("no_test", dict(x_train=_u8(200, 8, 8)),
     "data.eval_split='test': .* has no array 'x_test'; arrays present: x_train"),
    ("test_shape", dict(x_train=_u8(200, 8, 8), x_test=_u8(50, 9, 9)),
     r"'x' examples of split 'test' are uint8\[9, 9, 1\] but the training split 'train' has "
     r"uint8\[8, 8, 1\]"),
    ("labels", dict(x_train=_u8(200, 8, 8), y_train=np.zeros((200, 2), np.int64)),
     r"y_train must be one integer label >= 0 per example"),
    ("not_zip", None, "is not an .npz file"),
    ("zero_bytes", None, "is not an .npz file"),
])
def test_bad_npz_data_fails_in_one_line_before_the_workdir_exists(tmp_path, capsys, name,
                                                                  arrays, expected):
  if arrays is None:
    path = str(tmp_path / f"{name}.npz")
    with open(path, "wb") as f:
      f.write(b"" if name == "zero_bytes" else b"these bytes are not a zip archive")
  else:
    path = _npz(tmp_path, name, **arrays)
  workdir = str(tmp_path / "run")
  line = _one_error_line(capsys, ARGV + ["--workdir", workdir, "--config.data.name=npz",
                                         f"--config.data.path={path}"])
  assert re.search(expected, line), line
  assert not os.path.exists(workdir)


def test_workdir_problems_give_one_line(tmp_path, capsys, monkeypatch):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  line = _one_error_line(capsys, ARGV + ["--workdir", str(a_file)])
  assert "is a file, not a folder" in line
  missing = str(tmp_path / "missing")
  for mode in ("eval", "sample"):
    line = _one_error_line(capsys, ARGV + ["--workdir", missing, "--mode", mode])
    assert "does not exist; train first" in line and not os.path.exists(missing)
  # A read-only folder (root may write anyway, so the probe is made to fail too).
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)

  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")
  monkeypatch.setattr(checks.tempfile, "TemporaryFile", refuse)
  try:
    line = _one_error_line(capsys, ARGV + ["--workdir", str(locked / "run")])
  finally:
    locked.chmod(0o755)
  assert "is not writable (Permission denied" in line and not os.listdir(locked)


def test_eval_and_sample_are_recorded_and_append_after_a_partial_row(trained, tmp_path, capsys):
  workdir = _copy(trained, tmp_path)
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 3')
  assert main.main(ARGV + ["--workdir", workdir, "--mode", "sample"]) == 0
  with contextlib.redirect_stdout(io.StringIO()):
    assert main.main(ARGV + ["--workdir", workdir, "--mode", "eval",
                             "--config.evals.test_ll.num_examples=10",
                             "--config.evals.test_ll.batch_size=10"]) == 0
  capsys.readouterr()
  rows = [json.loads(r) for r in open(os.path.join(workdir, "run_info.jsonl"))]
  assert [r["mode"] for r in rows] == ["train", "sample", "eval"]
  assert rows[-1]["end_step"] == 30
  evals = [r for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
           if "test_ll/neg_elbo" in r]
  assert len(evals) == 1 and evals[0]["step"] == 30
