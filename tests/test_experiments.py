"""Every experiment's smoke variant trains, checkpoints, resumes, evaluates and samples."""
import glob
import importlib.util
import json
import os

import pytest
from conftest import REPO, xla_optimizations

from gen_jax import config_lib, report
from gen_jax.trainers import loop
from gen_jax.utils import writers

EXPERIMENTS = sorted(glob.glob(os.path.join(REPO, "experiments", "*.py")))


def _is_application(path) -> bool:
  return bool(config_lib.load_config(f"{path}:smoke").application.type)


# Training experiments; applications (gen_jax.applications) train sub-runs of them.
TRAINING = [p for p in EXPERIMENTS if not _is_application(p)]
APPLICATIONS = [p for p in EXPERIMENTS if _is_application(p)]


def _module(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_header_names_command_hardware_and_target(path):
  module = _module(path)
  doc = module.__doc__ or ""
  assert "python -m gen_jax.main --config experiments/" in doc, "header needs its command"
  assert "smoke" in module.VARIANTS and "smoke" in doc
  assert "CPU" in doc or "GPU" in doc, "header needs the expected hardware"
  assert any(w in doc for w in ("Reproduces", "Target")), "header needs its target"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_every_variant_builds_a_valid_config_and_is_documented(path):
  module = _module(path)
  for variant in ("",) + tuple(module.VARIANTS):
    config = config_lib.load_config(path + (":" + variant if variant else ""))
    config_lib.validate(config)
    if variant:
      assert variant in module.__doc__, f"variant {variant!r} is not described in the header"


# Smokes whose time goes into running a hundred or more convolution steps rather than
# into compiling: XLA's optimizations pay for themselves there and nowhere else.
COMPUTE_BOUND = ("classifier_mnist.py", "classifier_fashion_mnist.py")


@pytest.fixture
def compile_cheaply_unless_compute_bound(request):
  """Most smokes run ~10 steps of tiny models, so compiling is nearly all their time."""
  cheap = os.path.basename(request.node.callspec.params["path"]) not in COMPUTE_BOUND
  with xla_optimizations(not cheap):
    yield


@pytest.mark.parametrize("path", TRAINING, ids=os.path.basename)
def test_smoke_trains_resumes_evaluates_and_samples(path, tmp_path, capsys, request):
  spec, workdir = f"{path}:smoke", str(tmp_path)
  # Evaluation runs once, from the checkpoint, below (as --mode eval runs it); training
  # with eval_at_end is the same evaluation code on the live state.
  config = config_lib.load_config(spec, ["eval_at_end=False"])
  # Prerequisite runs (a feature classifier) are compute-bound: trained before the cheap
  # compiles start.
  loop.train_prerequisites(config)
  request.getfixturevalue("compile_cheaply_unless_compute_bound")
  steps = config.total_steps
  loop.train(config, workdir)
  assert os.path.isfile(os.path.join(workdir, "config.json"))
  assert glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))
  # Samples in their modality's format: a PNG grid or plot, text, or CSV.
  assert glob.glob(os.path.join(workdir, "samples", f"samples_{steps:08d}.*"))
  # Rerunning with a longer schedule resumes from the last checkpoint.
  longer = config_lib.load_config(spec, [f"total_steps={2 * steps}", "eval_at_end=False"])
  loop.train(longer, workdir)
  assert f"resumed from {workdir}/checkpoints at step {steps}" in capsys.readouterr().out.replace(
      os.path.abspath(workdir), workdir)
  logged = [r["step"] for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if any(k.endswith("loss") for k in r)]
  assert logged == sorted(set(logged)) and logged[-1] == 2 * steps
  # Evaluation and sampling from the checkpoint, as --mode eval / sample run them.
  results = loop.evaluate(longer, workdir)
  assert results and all(v == v for v in results.values() if isinstance(v, float))
  with open(os.path.join(workdir, "eval", f"step_{2 * steps:08d}.json")) as f:
    saved = json.load(f)
  assert saved["results"].keys() == results.keys() and saved["units"]
  assert os.path.isfile(loop.sample(longer, workdir))
  # The results table is generated from the workdir alone.
  r = report.row(workdir)
  assert r["commit"] and r["hardware"] and r["schedule"].startswith(f"{2 * steps:,} steps")


@pytest.mark.parametrize("path", APPLICATIONS, ids=os.path.basename)
def test_application_smoke_runs_then_reuses_its_runs(path, tmp_path, capsys, request):
  """An application's smoke trains its sub-runs and scores them; rerunning the same
  command reuses every finished run and gives the same results."""
  from gen_jax import applications  # pylint: disable=g-import-not-at-top
  config, workdir = config_lib.load_config(f"{path}:smoke"), str(tmp_path)
  request.getfixturevalue("compile_cheaply_unless_compute_bound")
  first = applications.run(config, workdir)
  assert first and all(v == v for v, _ in first.values() if isinstance(v, float))
  with open(os.path.join(workdir, "eval", "application.json")) as f:
    saved = json.load(f)
  assert saved["results"].keys() == first.keys() and all(saved["units"].values())
  capsys.readouterr()
  again = applications.run(config, workdir)
  assert "reusing" in capsys.readouterr().out
  assert {k: v for k, (v, _) in again.items()} == {k: v for k, (v, _) in first.items()}
