"""Notebooks execute top to bottom (with nbclient and the python3 kernel)."""
import glob
import os

import nbformat
import pytest
from conftest import REPO, compilation_cache_env
from nbclient import NotebookClient

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, monkeypatch):
  # The kernel inherits the environment. Notebooks that train for many steps take a
  # tenth of them under GEN_JAX_NOTEBOOK_SMOKE=1 (their own schedules are for reading),
  # so compiling is most of their time here: compile them cheaply.
  monkeypatch.setenv("GEN_JAX_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  for k, v in compilation_cache_env().items():   # a notebook recompiles what it trained with
    monkeypatch.setenv(k, v)
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.dirname(path)}}).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors
