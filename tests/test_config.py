"""Bad configs and missing data fail with one clear line listing the valid choices."""
import pytest
from conftest import experiment

from gen_jax import config_lib, errors, main
from gen_jax.data import sources


def _error_line(capsys, argv):
  code = main.main(argv)
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert len(err) == 1 and err[0].startswith("error: "), err
  return err[0]


@pytest.mark.parametrize("argv_tail,expected", [
    (["--config.nonsense=1"], "unknown config key in config: 'nonsense'; valid choices:"),
    (["--config.model.latnt_dim=3"], "valid choices: activation, arch, beta, hidden, k"),
    (["--config.family=gan9"], "unknown family 'gan9'; valid choices: "),
    (["--config.data.name=mnits"], "unknown dataset 'mnits'; valid choices: 2spirals, "),
    (["--config.data.variant=binary"], "unknown data variant 'binary'; valid choices:"),
    (["--config.data.variant=binarized_static"], "needs a dataset that is already binary"),
    (["--config.total_steps=abc"], "cannot parse 'abc' for config key total_steps"),
    (["--config.total_steps=21"], "must be a multiple of steps_per_dispatch=2"),
    (["--config.optim.model.name=adan"], "unknown optimizer 'adan'; valid choices: adam"),
    (["--config.evals.test_ll.type=fid"], "unknown evaluator type 'fid'"),
    (["--mode=serve"], "unknown mode 'serve'; valid choices: eval, sample, train"),
    (["--foo=1"], "unknown argument '--foo=1'"),
])
def test_bad_config_gives_one_clear_line(capsys, tmp_path, argv_tail, expected):
  argv = ["--config", experiment("quickstart.py:smoke"), "--workdir", str(tmp_path)]
  assert expected in _error_line(capsys, argv + argv_tail)


def test_unknown_variant_lists_variants(capsys, tmp_path):
  line = _error_line(capsys, ["--config", experiment("iwae_mnist.py:k500"),
                              "--workdir", str(tmp_path)])
  assert "unknown variant 'k500'; valid choices: k5, k50, k50_cpu, k5_cpu, smoke" in line


def test_missing_config_file(capsys, tmp_path):
  line = _error_line(capsys, ["--config", "experiments/nope.py", "--workdir", str(tmp_path)])
  assert "config file not found: experiments/nope.py" in line


def test_eval_without_checkpoint_says_train_first(capsys, tmp_path):
  line = _error_line(capsys, ["--config", experiment("quickstart.py:smoke"),
                              "--workdir", str(tmp_path), "--mode", "eval"])
  assert "no checkpoint in" in line and "train first" in line


def test_missing_tfds_dataset_says_how_to_provide_it(capsys, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
  sources._load_cached.cache_clear()   # an earlier test in this process may have read it
  line = _error_line(capsys, ["--config", experiment("vae_mnist.py:smoke"),
                              "--workdir", str(tmp_path), "--config.data.name=fashion_mnist"])
  assert "dataset 'fashion_mnist' (split 'train') not found in" in line
  assert "TFDS_DATA_DIR" in line and "--config.data.download=True" in line


def test_missing_npz_file(capsys, tmp_path):
  line = _error_line(capsys, ["--config", experiment("quickstart.py:smoke"),
                              "--workdir", str(tmp_path), "--config.data.name=npz",
                              f"--config.data.path={tmp_path}/none.npz"])
  assert "npz file not found" in line


def test_overrides_keep_types():
  c = config_lib.load_config(experiment("quickstart.py:smoke"),
                             ["model.hidden=(3, 4)", "ema_decay=0.5", "eval_at_end=false",
                              "data.name=mnist"])
  assert c.model.hidden == (3, 4) and c.ema_decay == 0.5 and c.eval_at_end is False
  with pytest.raises(errors.ConfigError, match="is a section"):
    config_lib.set_value(c, "data", "x")


def test_checkpoint_from_another_model_is_reported(capsys, tmp_path):
  argv = ["--config", experiment("quickstart.py:smoke"), "--workdir", str(tmp_path),
          "--config.eval_at_end=False"]
  assert main.main(argv) == 0
  capsys.readouterr()
  line = _error_line(capsys, argv + ["--mode=eval", "--config.model.latent_dim=5"])
  assert "does not fit this config (was the model or optimizer changed?)" in line


def test_a_key_added_to_base_after_a_run_was_saved_is_no_change_at_its_default():
  config = config_lib.load_config(experiment("quickstart.py"))
  saved = config_lib.as_json(config)
  del saved["application"], saved["data"]["classes"]      # a run saved before those keys
  assert config_lib.changed_keys(saved, config) == []
  config.data.classes = (3,)                              # set: that is a change
  assert config_lib.changed_keys(saved, config) == ["data.classes"]


def test_every_evaluator_type_says_whether_it_reads_a_split_and_a_bad_one_fails_early():
  from gen_jax import registry  # pylint: disable=g-import-not-at-top
  from gen_jax.trainers import checks  # pylint: disable=g-import-not-at-top
  reads, none = set(checks.EVAL_SPLIT_KEYS), set(checks.EVAL_READS_NO_SPLIT)
  assert not reads & none and reads | none == set(registry.EVALUATORS)
  config = config_lib.load_config(experiment("quickstart.py:smoke"))
  train = sources.from_config(config.data, config.data.train_split)
  for kind, key in checks.EVAL_SPLIT_KEYS.items():
    if not key:
      continue
    config.evals = {"probe": {"type": kind, key: "tset"}}
    with pytest.raises(errors.ConfigError, match=f"evals.probe.{key}='tset': unknown split"):
      checks.check_eval_splits(config, train)
