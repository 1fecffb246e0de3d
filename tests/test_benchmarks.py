"""The all-benchmarks table reads every benchmark's JSON report (the committed ones)."""
import glob
import json
import os
import sys

import pytest
from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import run_all  # noqa: E402  pylint: disable=g-import-not-at-top

# The committed per-benchmark results: benchmarks/results/<benchmark>_<hardware>.json.
RESULTS = {name: path for name in run_all.BENCHMARKS
           for path in sorted(glob.glob(os.path.join(REPO, "benchmarks", "results",
                                                     f"{name}_cpu_2core.json")))}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_each_report_gives_rows_with_the_reference_over_gen_jax(name):
  with open(RESULTS[name]) as f:
    rows = run_all.rows_of(name, json.load(f))
  assert rows
  for r in rows:
    assert r["gen_jax"] > 0 and r["reference"]
    if r["reference_value"] and r["unit"] != "tokens/s":
      assert r["ratio"] == pytest.approx(r["reference_value"] / r["gen_jax"])
    assert r["met"] is None or r["met"] == (r["ratio"] >= r["target"])


def test_table_has_one_line_per_row_and_escapes_pipes():
  rows = [run_all._row("bn", "P(a | b)", 1.0, "pgmpy", 3.0, 2.0, "ms"),  # pylint: disable=protected-access
          run_all._row("vae", "step", 2.0, "PyTorch eager", None, 2.0, "ms")]  # pylint: disable=protected-access
  meta = dict(hardware="cpu", commit="abc", date="today", load=[0.1], command="python x")
  lines = [line for line in run_all.table(rows, meta).splitlines() if line.startswith("| ")]
  assert len(lines) == 3
  assert all(line.replace("\\|", "").count("|") == 8 for line in lines)
  assert "3.00x" in lines[1] and "yes" in lines[1] and "n/a" in lines[2]


def test_recorded_command_is_relative_to_the_repository_and_drops_a_temporary_json():
  import tempfile  # pylint: disable=g-import-not-at-top
  import common  # pylint: disable=g-import-not-at-top
  tmp_json = os.path.join(tempfile.gettempdir(), "x", "vae.json")
  argv = [os.path.join(REPO, "benchmarks", "bench_vae.py"), "--steps", "3", "--json", tmp_json]
  assert common.command_line(argv) == "python benchmarks/bench_vae.py --steps 3"
  assert common.command_line(["bench_vae.py", "--json", "out.json"]) == (
      "python bench_vae.py --json out.json")


def test_readme_table_is_the_committed_all_benchmarks_run_retabled(tmp_path, capsys):
  """The README's block is exactly what `run_all.py --from-json` rebuilds from one of the
  committed JSONs (one per machine): no number in it was typed by hand."""
  import shutil  # pylint: disable=g-import-not-at-top
  saved = sorted(glob.glob(os.path.join(REPO, "benchmarks", "results", "1_x_cpu_2_cores*.json")))
  assert saved, "no committed run_all result"
  with open(os.path.join(REPO, "README.md")) as f:
    before = f.read()
  rebuilt = []
  for i, path in enumerate(saved):
    readme = str(tmp_path / f"README_{i}.md")
    shutil.copy(os.path.join(REPO, "README.md"), readme)
    assert run_all.main(["--from-json", path, "--readme", readme]) == 0
    capsys.readouterr()
    with open(readme) as f:
      rebuilt.append(f.read())
  assert before in rebuilt, "the README block matches none of " + ", ".join(map(os.path.basename, saved))
  block = before.split(run_all.START)[1].split(run_all.END)[0]
  assert "| gpt | char GPT, trainer step" in block and "≥ 1.5x" in block


def test_default_json_names_the_cpu_model_so_machines_do_not_overwrite_each_other():
  a = run_all.default_json("1 x cpu (2 cores)", "AMD EPYC (AVX-512)")
  b = run_all.default_json("1 x cpu (2 cores)", "Intel(R) Xeon(R) Processor (AVX-512, AMX)")
  assert os.path.basename(a) == "1_x_cpu_2_cores_amd_epyc_avx_512.json"
  assert a != b
  assert os.path.basename(run_all.default_json("1 x NVIDIA H100", None)) == "1_x_nvidia_h100.json"


def test_compiled_flops_counts_a_matmul_as_two_flops_per_multiply_add():
  import common  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
  assert common.compiled_flops(jax.jit(jnp.matmul).lower(a, b).compile()) == 2 * 8 * 16 * 4
  rates = common.gemm_rate(n=64, reps=1)
  assert set(rates) == {"xla"} and rates["xla"] > 0


def test_dcgan_row_states_the_roofline_when_the_report_has_it():
  report = {"ms_per_step": {"jax_mixed": 354.1, "jax_matmul": 422.6, "torch_eager": 295.3},
            "fraction_of_matmul_rate": {"jax_mixed": 0.57, "torch_eager": 0.73},
            "fraction_needed_for_target": {"jax_mixed": 0.82}, "target": 1.2}
  (row,) = run_all.rows_of("dcgan", report)
  assert "(jax_mixed)" in row["case"] and row["met"] is False
  assert row["note"] == ("57% of the measured float32 matmul rate, PyTorch 73%; "
                         "1.2x would need 82%")
  del report["fraction_of_matmul_rate"]
  assert run_all.rows_of("dcgan", report)[0]["note"] == ""
