"""Shared test setup: CPU only, offline data from TFDS_DATA_DIR when present."""
import contextlib
import os
import subprocess
import sys

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA:CPU's MLIR fusion emitters take most of a tiny model's compile time (a 1-layer
# transformer's train step: 3.2 s with them, 1.4 s without); the tests' models are tiny
# and run a few steps, so they compile with the older loop emitters. The flag is read
# when the backend starts: set before any test imports jax's backend.
TEST_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_TFDS = os.path.join(os.path.dirname(REPO), "shared", "tensorflow_datasets")
if "TFDS_DATA_DIR" not in os.environ and os.path.isdir(SHARED_TFDS):
  os.environ["TFDS_DATA_DIR"] = SHARED_TFDS


_CACHE_DIR = pytest.StashKey[str]()
_CACHE_ENV = "GEN_JAX_TEST_XLA_CACHE"


def pytest_configure(config):
  """One persistent XLA compilation cache per test session.

  The smoke tests train, resume, evaluate and sample each experiment, and every
  call builds new jitted closures of the same computations; the cache turns
  their repeated compiles into lookups.
  """
  import tempfile  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  # One folder for the whole session: made by the first process (pytest itself, or
  # the xdist controller), inherited by every xdist worker through the environment.
  cache = os.environ.get(_CACHE_ENV)
  if not cache:
    cache = os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="gen_jax_xla_cache_")
    config.stash[_CACHE_DIR] = cache
  for name, value in _cache_settings(cache).items():
    jax.config.update(name, value)


def _cache_settings(cache: str) -> dict:
  """JAX options that send every compiled program, however small or quick, to `cache`."""
  return {"jax_compilation_cache_dir": cache, "jax_persistent_cache_min_compile_time_secs": 0.0,
          "jax_persistent_cache_min_entry_size_bytes": 0}


def pytest_unconfigure(config):
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(config.stash.get(_CACHE_DIR, ""), ignore_errors=True)


def tfds_has(name: str) -> bool:
  root = os.environ.get("TFDS_DATA_DIR", "")
  return bool(root) and os.path.isdir(os.path.join(root, name))


def needs_tfds(name: str):
  return pytest.mark.skipif(
      not tfds_has(name),
      reason=f"needs the real TFDS dataset {name!r}: set TFDS_DATA_DIR to a folder holding it")


@contextlib.contextmanager
def xla_optimizations(enabled: bool):
  """XLA's optimization passes on or off inside the block, as they were after it."""
  import jax  # pylint: disable=g-import-not-at-top
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", not enabled)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(scope="module")
def cheap_compiles():
  """For modules of many tiny models: XLA's optimization passes cost more than they save."""
  with xla_optimizations(False):
    yield


def subprocess_env(devices: int = 1, optimized: bool = False) -> dict:
  """The environment of a test's child process: `devices` fake CPU devices and the
  session's compilation cache. Children run tiny models for a few steps, so compiling is
  most of their time: XLA's optimizations are off and the loop emitters on, unless
  `optimized` (children that run thousands of steps get XLA's defaults)."""
  flags = f"--xla_force_host_platform_device_count={devices}"
  return {**os.environ, **compilation_cache_env(),
          "XLA_FLAGS": flags if optimized else f"{flags} {TEST_XLA_FLAGS}",
          "JAX_DISABLE_MOST_OPTIMIZATIONS": "0" if optimized else "1", "PYTHONUNBUFFERED": "1"}


def compilation_cache_env() -> dict:
  """Environment variables that give a child process (a run, a notebook kernel) the
  session's compilation cache: a child that compiles what an earlier one did reads it."""
  cache = os.environ.get(_CACHE_ENV, "")
  return {k.upper(): str(v) for k, v in _cache_settings(cache).items()} if cache else {}


def run_main(args, devices: int = 1, env=None, timeout=300, popen=False, optimized=False,
             **kwargs):
  """Runs `python -m gen_jax.main ARGS` with `devices` fake CPU devices."""
  full_env = subprocess_env(devices, optimized)
  full_env.update(env or {})
  cmd = [sys.executable, "-m", "gen_jax.main", *args]
  if popen:  # a background process; kwargs go to Popen (stdout=..., stderr=...)
    return subprocess.Popen(cmd, env=full_env, cwd=REPO, **kwargs)
  return subprocess.run(cmd, env=full_env, cwd=REPO, capture_output=True, text=True,
                        timeout=timeout)


def experiment(name: str) -> str:
  return os.path.join(REPO, "experiments", name)
