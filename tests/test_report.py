"""Number formatting of the generated results table."""
import json

import pytest

from gen_jax import report


@pytest.mark.parametrize("value, sem, text", [
    (88.2312, 0.2421, "88.23 ± 0.24"),      # nats: two decimals
    (1.87123, 0.0031, "1.871 ± 0.003"),     # bits/dim: the error's first digit is shown
    (0.99351, 0.00081, "0.9935 ± 0.0008"),  # accuracy: not rounded up past a 0.993 target
    (0.5, 1e-9, "0.5000 ± 0.0000"),         # at most four decimals
    (23.0, None, "23.00"),
])
def test_value_shows_the_first_significant_digit_of_the_standard_error(value, sem, text):
  assert report._value(value, sem) == text   # pylint: disable=protected-access


def test_pipes_inside_a_cell_are_escaped_so_the_row_keeps_its_columns():
  row = {k: "x" for k, _ in report.COLUMNS} | {"command": "python -m gen_jax.main"}
  row["also"] = "kl 0.1 [KL(p || q)]"
  lines = [line for line in report.table([row]).splitlines() if line.startswith("|")]
  unescaped = [line.replace("\\|", "").count("|") for line in lines]
  assert unescaped[2] == unescaped[0] == len(report.COLUMNS) + 1


def _run(path, name, variant, metric, unit, value, estimator=None, model=None):
  path.mkdir()
  (path / "eval").mkdir()
  ref = {"metric": metric, "value": 0.0, "source": "", "also": []}
  if estimator is not None:
    ref["estimator"] = estimator
  (path / "config.json").write_text(json.dumps({
      "data": {"name": name, "variant": variant, "batch_size": 10}, "total_steps": 20,
      "reference": ref, "model": model or {}}))
  results = {metric: value, metric + "_sem": 0.1, "a": 1.0, "b": 2.0, "c": 3.0}
  (path / "eval" / "step_00000020.json").write_text(json.dumps(
      {"step": 20, "results": results, "units": {k: f"{unit}; mean" for k in results}}))
  (path / "run_info.jsonl").write_text(json.dumps(
      {"commit": "aaa", "hardware": "cpu", "start_step": 0, "end_step": 20, "wall_s": 6.0,
       "train_examples": 100, "command": "python -m gen_jax.main"}) + "\n")
  return str(path)


def test_binarized_mnist_rows_share_one_table_ordered_by_variant_then_estimator(tmp_path):
  rows = [report.row(_run(tmp_path / "iwae", "mnist", "binarized_dynamic", "nll",
                          "nats, IWAE importance-sampling estimate", 88.0)),
          report.row(_run(tmp_path / "rbm", "mnist", "binarized_fixed", "log_px",
                          "nats, AIS estimate", -100.0)),
          report.row(_run(tmp_path / "nade", "binarized_mnist", "binarized_static", "nll",
                          "nats per image, exact", 89.0)),
          report.row(_run(tmp_path / "mob", "binarized_mnist", "binarized_static", "ll",
                          "nats, exactly nothing", -120.0, estimator="exact")),
          report.row(_run(tmp_path / "flow", "mnist", "dequantized_8bit", "bpd", "bits/dim", 1.2)),
          report.row(_run(tmp_path / "vardeq", "mnist", "dequantized_8bit", "bpd", "bits/dim", 1.1,
                          model={"dequantization": "variational"})),
          report.row(_run(tmp_path / "gen", "toy", "tokens", "acc",
                          "fraction decoded exactly", 0.5))]
  by_run = {r["run"]: r for r in rows}
  assert by_run["iwae"]["estimator"] == "IWAE estimate"
  assert by_run["rbm"]["estimator"] == "AIS estimate"
  assert by_run["nade"]["estimator"] == "exact" and by_run["mob"]["estimator"] == "exact"
  assert by_run["flow"]["estimator"] == "bound (dequantized)"
  assert by_run["vardeq"]["estimator"] == "bound (variational dequantization)"
  assert by_run["gen"]["estimator"] == "–"          # "exactly" is not "exact"
  # At most two secondary results, never a standard error.
  assert by_run["nade"]["also"].count(";") == 1 and "_sem" not in by_run["nade"]["also"]
  text = report.table(rows)
  tables = text.split("**")[1::2]
  assert tables[0] == "Binarized MNIST" and len(tables) == 3
  first = text.split("**")[2]
  order = [line.split(" | ")[0][2:] for line in first.splitlines() if line.startswith("| ")][1:]
  assert order == ["iwae", "rbm", "mob", "nade"]   # variant, then estimator, then name


def test_a_resumed_run_lists_every_commit_and_hardware_and_sums_wall_time(tmp_path):
  (tmp_path / "eval").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({
      "data": {"name": "toy", "variant": "v", "batch_size": 10}, "total_steps": 20,
      "reference": {"metric": "m", "value": 1.0, "source": "paper"}}))
  (tmp_path / "eval" / "step_00000020.json").write_text(json.dumps(
      {"step": 20, "results": {"m": 0.5}, "units": {"m": "units"}}))
  runs = [("aaa", "1 x cpu (1 of 2 cores)", 0, 10, 60.0),
          ("bbb", "1 x cpu (2 cores)", 10, 20, 60.0),
          ("bbb", "1 x cpu (2 cores)", 20, 20, 0.0)]
  (tmp_path / "run_info.jsonl").write_text("".join(json.dumps(
      {"commit": c, "hardware": h, "start_step": a, "end_step": b, "wall_s": w,
       "train_examples": 100, "command": "python -m gen_jax.main"}) + "\n"
      for c, h, a, b, w in runs))
  r = report.row(str(tmp_path))
  assert r["commit"] == "aaa, bbb"
  assert r["hardware"] == "1 x cpu (1 of 2 cores); 1 x cpu (2 cores)"
  assert r["wall"] == "2.0 min" and r["schedule"].startswith("20 steps")


def test_evaluation_records_add_wall_time_but_not_a_schedule(tmp_path):
  (tmp_path / "eval").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({
      "data": {"name": "toy", "variant": "v", "batch_size": 10}, "total_steps": 20,
      "reference": {"metric": "m", "value": 1.0, "source": "paper"}}))
  (tmp_path / "eval" / "step_00000010.json").write_text(json.dumps(
      {"step": 10, "results": {"m": 0.5}, "units": {"m": "units"}}))
  rows = [{"mode": "train", "start_step": 0, "end_step": 20, "wall_s": 60.0,
           "train_examples": 100},
          {"mode": "eval", "start_step": 10, "end_step": 10, "wall_s": 60.0}]
  (tmp_path / "run_info.jsonl").write_text("".join(json.dumps(
      dict(r, commit="aaa", hardware="cpu", command="python -m gen_jax.main")) + "\n"
      for r in rows))
  r = report.row(str(tmp_path))
  assert r["schedule"] == "20 steps × batch 10 (2.0 epochs)" and r["wall"] == "2.0 min"


@pytest.mark.parametrize("paper_epochs, text", [
    (0.0, "not stated"),
    (2.0, "2 epochs"),                                         # the run's own 2.0 epochs
    (100.0, "100 epochs; **short of the paper's schedule** (2.0%)"),
])
def test_the_papers_schedule_is_shown_and_a_shorter_run_is_marked(tmp_path, paper_epochs, text):
  (tmp_path / "eval").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({
      "data": {"name": "toy", "variant": "v", "batch_size": 10}, "total_steps": 20,
      "reference": {"metric": "m", "value": 1.0, "source": "paper", "also": [],
                    "estimator": "exact", "epochs": paper_epochs}}))
  (tmp_path / "eval" / "step_00000020.json").write_text(json.dumps(
      {"step": 20, "results": {"m": 0.5}, "units": {"m": "units"}}))
  (tmp_path / "run_info.jsonl").write_text(json.dumps(
      {"commit": "aaa", "hardware": "cpu", "start_step": 0, "end_step": 20, "wall_s": 6.0,
       "train_examples": 100, "command": "python -m gen_jax.main"}) + "\n")
  r = report.row(str(tmp_path))
  assert r["schedule"].startswith("20 steps × batch 10 (2.0 epochs)")
  assert r["paper_schedule"] == text


def test_an_application_run_is_a_row_of_the_applications_table(tmp_path):
  (tmp_path / "eval").mkdir()
  (tmp_path / "class_0" / "checkpoints").mkdir(parents=True)
  (tmp_path / "config.json").write_text(json.dumps({
      "application": {"type": "anomaly"}, "data": {"name": "", "variant": ""},
      "reference": {"metric": "mean/auroc", "value": 94.8, "source": "paper",
                    "also": ["class_0/auroc"]}}))
  (tmp_path / "eval" / "application.json").write_text(json.dumps(
      {"results": {"mean/auroc": 91.0, "class_0/auroc": 97.0, "class_0/auroc_se": 0.13},
       "units": {"mean/auroc": "%", "class_0/auroc": "%", "class_0/auroc_se": "%"}}))
  (tmp_path / "run_info.jsonl").write_text(json.dumps(
      {"mode": "application", "commit": "aaa", "hardware": "cpu", "start_step": 0,
       "end_step": 0, "wall_s": 60.0, "command": "python -m gen_jax.main"}) + "\n")
  r = report.row(str(tmp_path))
  assert report.group(r) == "Applications"
  assert r["value"] == "91.00" and r["also"] == "class_0/auroc 97.00 ± 0.13 [%]"
  assert r["schedule"].startswith("1 sub-runs") and r["wall"] == "1.0 min"
