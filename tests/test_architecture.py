"""The layering of the package, checked on its import statements.

Layers sit below the families and loops: data knows no model or metric,
evaluators never reach the trainers, families never reach trainers or
evaluators, and no module name is used twice across folders.
"""
import ast
import collections
import glob
import os

import pytest
from conftest import REPO

PACKAGE = os.path.join(REPO, "gen_jax")


def _imports(path: str) -> set[str]:
  """Every gen_jax module a file imports (module-level or inside functions)."""
  tree = ast.parse(open(path).read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith("gen_jax"))
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gen_jax"):
      out.add(node.module)
      out.update(f"{node.module}.{a.name}" for a in node.names)
  return out


def _files(folder: str) -> list[str]:
  return sorted(glob.glob(os.path.join(PACKAGE, folder, "*.py")))


FORBIDDEN = {
    "data": ("gen_jax.metrics", "gen_jax.models", "gen_jax.trainers", "gen_jax.evaluators",
             "gen_jax.nn"),
    "evaluators": ("gen_jax.trainers",),
    "models": ("gen_jax.trainers", "gen_jax.evaluators"),
    "nn": ("gen_jax.models", "gen_jax.trainers", "gen_jax.evaluators", "gen_jax.data"),
    "inference": ("gen_jax.models", "gen_jax.trainers", "gen_jax.evaluators"),
    "metrics": ("gen_jax.models", "gen_jax.trainers", "gen_jax.evaluators", "gen_jax.data"),
}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layers_import_only_downwards(folder):
  bad = [(os.path.relpath(f, REPO), m) for f in _files(folder) for m in _imports(f)
         if m.startswith(FORBIDDEN[folder])]
  assert not bad, bad


def test_module_names_are_not_repeated_across_folders():
  names = collections.defaultdict(list)
  for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
    base = os.path.basename(path)
    if base != "__init__.py":
      names[base].append(os.path.relpath(path, PACKAGE))
  repeated = {k: v for k, v in names.items() if len(v) > 1}
  assert not repeated, repeated
