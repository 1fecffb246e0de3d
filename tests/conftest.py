"""Shared test setup: CPU only, offline data from TFDS_DATA_DIR when present."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_TFDS = os.path.join(os.path.dirname(REPO), "shared", "tensorflow_datasets")
if "TFDS_DATA_DIR" not in os.environ and os.path.isdir(SHARED_TFDS):
  os.environ["TFDS_DATA_DIR"] = SHARED_TFDS


def tfds_has(name: str) -> bool:
  root = os.environ.get("TFDS_DATA_DIR", "")
  return bool(root) and os.path.isdir(os.path.join(root, name))


def needs_tfds(name: str):
  return pytest.mark.skipif(
      not tfds_has(name),
      reason=f"needs the real TFDS dataset {name!r}: set TFDS_DATA_DIR to a folder holding it")


@pytest.fixture(scope="module")
def cheap_compiles():
  """For modules of many tiny models: XLA's optimization passes cost more than they save."""
  import jax  # pylint: disable=g-import-not-at-top
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def run_main(args, devices: int = 1, env=None, timeout=300, popen=False, **kwargs):
  """Runs `python -m gen_jax.main ARGS` with `devices` fake CPU devices."""
  full_env = dict(os.environ)
  full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  full_env["PYTHONUNBUFFERED"] = "1"
  full_env.update(env or {})
  cmd = [sys.executable, "-m", "gen_jax.main", *args]
  if popen:  # a background process; kwargs go to Popen (stdout=..., stderr=...)
    return subprocess.Popen(cmd, env=full_env, cwd=REPO, **kwargs)
  return subprocess.run(cmd, env=full_env, cwd=REPO, capture_output=True, text=True,
                        timeout=timeout)


def experiment(name: str) -> str:
  return os.path.join(REPO, "experiments", name)
