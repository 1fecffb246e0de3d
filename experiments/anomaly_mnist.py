"""One-class anomaly detection on MNIST: one model per normal class, AUROC on the whole test set.

Target: Ruff et al. 2018, "Deep One-Class Classification" (ICML), Table 1,
  MNIST, one class normal, the other nine anomalous, AUROC in %: Deep SVDD
  (one-class) 98.0 / 99.7 / 91.7 / 91.9 / 94.9 / 88.5 / 98.3 / 94.6 / 93.9 /
  96.5 for classes 0-9, mean 94.8; their DCAE baseline (reconstruction error of
  a convolutional autoencoder) averages about 92 (its row, as remembered, not
  checked against the table here). The scores here come from generative
  models, not from a one-class objective, and train for minutes per class, so
  the numbers are reported as measured beside those.
Protocol (gen_jax.applications.anomaly, protocol "one_class"): for each class c,
  a sub-run in <workdir>/class_<c>/ trains on the training images of class c
  only (data.classes); all 10,000 test images are scored; anomalies are y != c.
  Ruff et al.'s global contrast normalization is not applied (the models see
  their own data variants).

Variants and commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/anomaly_mnist.py --workdir runs/anomaly_mnist
      default: reconstruction error (mean squared error per pixel) of the
      DCAE-style conv autoencoder of experiments/autoencoder_mnist.py:cpu,
      1,000 steps of batch 64 per class (about 11 epochs of one class); 2 CPU
      cores: about 30 minutes
  python -m gen_jax.main --config experiments/anomaly_mnist.py:vae --workdir runs/anomaly_mnist_vae
      -log p(x) of the Burda MLP VAE of experiments/vae_mnist.py:cpu (IWAE
      estimate, k = 100), 1,500 steps of batch 100 per class (25 epochs of
      one class), constant learning rate 1e-3; 2 CPU cores: 20-25 minutes.
      Measured (2 CPU cores shared with other runs, 25 min): 97.7 / 99.9 /
      84.2 / 87.4 / 90.9 / 91.4 / 96.4 / 95.0 / 77.0 / 93.5, mean 91.3
  python -m gen_jax.main --config experiments/anomaly_mnist.py:smoke --workdir /tmp/anomaly_smoke
      digits, classes 0 and 1, 10 steps each; seconds on CPU; used by the tests
Rerunning a command reuses every finished class.
"""
import ml_collections

from gen_jax import config_lib

VARIANTS = ("vae", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  return one_class_config(variant, dataset="mnist", vae_overrides={})


def one_class_config(variant: str, dataset: str, vae_overrides: dict) -> ml_collections.ConfigDict:
  """The one-class application on `dataset`; see the module docstring for the variants.

  Default: the conv autoencoder of experiments/autoencoder_mnist.py:cpu scored
  by reconstruction error; "vae": the MLP VAE of experiments/vae_mnist.py:cpu
  with `vae_overrides` (e.g. its likelihood for 8-bit data) scored by -log p(x);
  "smoke": the VAE's smoke run on digits, scored by -log p(x).
  """
  c = config_lib.base()
  common = {"data": {"name": dataset}, "log_every_steps": 500, "eval_at_end": False}
  c.application = dict(
      type="anomaly", protocol="one_class", model="experiments/autoencoder_mnist.py:cpu",
      overrides={**common, "total_steps": 1000, "ckpt_every_steps": 1000},
      score="recon", background_mutation=0.2, classes=tuple(range(10)),
      in_data="", ood_data="", ood_split="test", ood_transform="none",
      batch_size=500, num_examples=0, eval_kwargs={})
  c.reference.update(metric="mean/auroc_recon", value=94.8,
                     source="Ruff et al. 2018, Table 1 (Deep SVDD, one-class; DCAE about 92)")
  if variant == "vae":
    sub = {**common, "total_steps": 1500, "ckpt_every_steps": 1500, "steps_per_dispatch": 100,
           "optim": {"model": {"schedule": "constant"}}}
    sub["data"] = {**common["data"], "batch_size": 100}
    for key, value in vae_overrides.items():   # one level deep: {"data": {...}, "model": {...}}
      sub[key] = {**sub.get(key, {}), **value} if isinstance(value, dict) else value
    c.application.update(model="experiments/vae_mnist.py:cpu", score="nll", batch_size=250,
                         eval_kwargs={"k": 100, "chunk": 100})
    c.application.overrides = sub
    c.reference.metric = "mean/auroc_nll"
  if variant == "smoke":
    c.application.update(model="experiments/vae_mnist.py:smoke", classes=(0, 1), score="nll",
                         batch_size=100, eval_kwargs={"k": 10, "chunk": 10})
    c.application.overrides = {"total_steps": 10, "eval_at_end": False}
    c.reference.value = 0.0      # digits, seconds: nothing to compare with
  return c
