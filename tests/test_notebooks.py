"""Notebooks execute top to bottom (with nbclient and the python3 kernel)."""
import glob
import os

import nbformat
import pytest
from conftest import REPO, compilation_cache_env
from nbclient import NotebookClient

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


# Notebooks that train conv nets for many steps: XLA's optimizations pay for themselves.
COMPUTE_BOUND = ("gans.ipynb",)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, monkeypatch):
  # The kernel inherits the environment. The other notebooks run small models for a
  # few steps, so compiling is most of their time: compile them cheaply.
  cheap = os.path.basename(path) not in COMPUTE_BOUND
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1" if cheap else "0")
  for k, v in compilation_cache_env().items():   # a notebook recompiles what it trained with
    monkeypatch.setenv(k, v)
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.dirname(path)}}).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors
