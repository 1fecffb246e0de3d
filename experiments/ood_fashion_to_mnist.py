"""The likelihood OOD failure: a model of Fashion-MNIST gives MNIST a higher likelihood.

Reproduces (direction and size): Nalisnick et al. 2019, "Do Deep Generative
  Models Know What They Don't Know?" (ICLR): models trained on Fashion-MNIST
  assign higher likelihood to MNIST test images; Ren et al. 2019, "Likelihood
  Ratios for Out-of-Distribution Detection" (NeurIPS), Table 1, PixelCNN++ on
  Fashion-MNIST against MNIST: AUROC 0.089 from the likelihood, 0.994 from the
  likelihood ratio against a background model trained on mutated inputs
  (their mutation rate tuned in 0.1-0.3; L2 regularization of the background
  model is not used here). Targets: auroc_nll < 0.5 and a large gain in
  auroc_likelihood_ratio; numbers reported as measured.
Protocol (gen_jax.applications.anomaly, protocol "ood_pair"): a Gated PixelCNN
  (experiments/gated_pixelcnn_fashion_mnist.py:cpu, exact -log p(x), 256-way
  softmax on 8-bit pixels) trains on Fashion-MNIST in <workdir>/model/, the
  same model on inputs mutated at rate 0.2 in <workdir>/background/; the
  10,000 Fashion-MNIST test images (normal) and 10,000 MNIST test images
  (anomalies) are scored; AUROC of MNIST against Fashion-MNIST, histograms in
  <workdir>/plots/ood_scores.png.

Variants and commands (data: TFDS fashion_mnist and mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/ood_fashion_to_mnist.py \\
      --workdir runs/ood_fashion_to_mnist
      default: 4 gated layers x 32 features, 2,000 steps of batch 32 per model
      (two models); 2 CPU cores: about 40 minutes; one GPU: minutes
  python -m gen_jax.main --config experiments/ood_fashion_to_mnist.py:vae \\
      --workdir runs/ood_fashion_to_mnist_vae
      the Burda MLP VAE of experiments/vae_mnist.py:cpu with a discretized
      logistic likelihood on 8-bit Fashion-MNIST, -log p(x) by IWAE (k = 100),
      3,000 steps of batch 100 per model (5 epochs); 2 CPU cores: about 15
      minutes
  python -m gen_jax.main --config experiments/ood_fashion_to_mnist.py:smoke --workdir /tmp/ood_smoke
      digits against the same digits inverted (255 - x), a 2-layer PixelCNN for
      10 steps per model; seconds on CPU; used by the tests
Rerunning a command reuses both finished models.
"""
from gen_jax import config_lib

VARIANTS = ("vae", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.application = dict(
      type="anomaly", protocol="ood_pair",
      model="experiments/gated_pixelcnn_fashion_mnist.py:cpu",
      overrides={"eval_at_end": False}, score="likelihood_ratio", background_mutation=0.2,
      classes=(), in_data="fashion_mnist", ood_data="mnist", ood_split="test",
      ood_transform="none", batch_size=200, num_examples=0, eval_kwargs={})
  c.reference.update(metric="auroc_nll", value=0.089,
                     source="Ren et al. 2019, Table 1 (PixelCNN++, Fashion-MNIST vs MNIST)",
                     also=("auroc_likelihood_ratio",))
  if variant == "vae":
    c.application.update(model="experiments/vae_mnist.py:cpu", batch_size=250,
                         eval_kwargs={"k": 100, "chunk": 100})
    c.application.overrides = {
        "data": {"variant": "grayscale", "batch_size": 100}, "model": {"likelihood": "logistic"},
        "optim": {"model": {"schedule": "constant"}}, "total_steps": 3000,
        "steps_per_dispatch": 100, "log_every_steps": 500, "ckpt_every_steps": 3000,
        "eval_at_end": False}
  if variant == "smoke":
    c.application.update(model="experiments/gated_pixelcnn_fashion_mnist.py:smoke",
                         in_data="digits", ood_data="", ood_transform="invert", batch_size=100)
    c.reference.value = 0.0      # digits, seconds: nothing to compare with
  return c
