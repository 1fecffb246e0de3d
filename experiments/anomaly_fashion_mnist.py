"""One-class anomaly detection on Fashion-MNIST: a model per normal class, AUROC on the test set.

Target: Ruff et al. 2018 ("Deep One-Class Classification", ICML) report MNIST
  and CIFAR-10 only; for MNIST their Deep SVDD averages 94.8% AUROC over the
  ten one-class problems (Table 1). No published number of this protocol with
  these models exists for Fashion-MNIST: the run reports per-class and mean
  AUROC as measured, to set beside experiments/anomaly_mnist.py.
Protocol (gen_jax.applications.anomaly, protocol "one_class"): for each class c,
  a sub-run in <workdir>/class_<c>/ trains on the training images of class c
  only (data.classes); all 10,000 test images are scored; anomalies are y != c.
Models: the DCAE-style conv autoencoder of experiments/autoencoder_mnist.py
  (reconstruction error), or the Burda MLP VAE of experiments/vae_mnist.py
  with a discretized logistic likelihood over the 256 gray levels
  (Fashion-MNIST is not binary).

Variants and commands (data: TFDS fashion_mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/anomaly_fashion_mnist.py --workdir runs/anomaly_fmnist
      default: reconstruction error of the conv autoencoder (its cpu variant),
      1,000 steps of batch 64 per class; 2 CPU cores: about 30 minutes
  python -m gen_jax.main --config experiments/anomaly_fashion_mnist.py:vae \\
      --workdir runs/anomaly_fmnist_vae
      -log p(x) of the logistic MLP VAE (IWAE estimate, k = 100), 1,500 steps
      of batch 100 per class; 2 CPU cores: about 20 minutes
  python -m gen_jax.main --config experiments/anomaly_fashion_mnist.py:smoke \\
      --workdir /tmp/anomaly_fmnist_smoke
      digits, classes 0 and 1, the autoencoder's smoke run (10 steps) scored by
      reconstruction error; seconds on CPU; used by the tests
Rerunning a command reuses every finished class.
"""
from gen_jax import config_lib

anomaly_mnist = config_lib.sibling(__file__, "anomaly_mnist")

VARIANTS = ("vae", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = anomaly_mnist.one_class_config(
      variant, dataset="fashion_mnist",
      vae_overrides={"data": {"variant": "grayscale"}, "model": {"likelihood": "logistic"}})
  c.reference.update(value=0.0, source="no published number for Fashion-MNIST (Ruff et al. "
                                       "2018 report MNIST and CIFAR-10)")
  if variant == "smoke":     # the autoencoder's reconstruction score, on digits
    c.application.update(model="experiments/autoencoder_mnist.py:smoke", score="recon")
    c.application.eval_kwargs = {}
  return c
