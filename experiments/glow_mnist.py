"""Glow (ActNorm, invertible 1x1 convolutions, affine couplings) on 8-bit dequantized MNIST.

Reproduces: 1.05 bits/dim on the MNIST test set (Glow as run by Grathwohl et
  al. 2019, "FFJORD", Table 2). Target: within 0.1 bits/dim at the default
  schedule; the CPU variant's number is reported as measured.
Model: L=2 levels (28x28x1 -> 14x14x4 -> 7x7x8), K steps per level of
  [ActNorm, LU 1x1 conv, affine channel coupling], factor-out between
  levels, Glow's learned priors (each factored-out half is N(mu(h),
  sigma(h)^2) given the half that stays, the top one N(mu, sigma^2) per
  pixel: `learned_prior`); inputs centred (x - 1/2), no logit (the `cpu`
  variant works in logit space, which trains faster). The
  couplings' scale is Glow's contracting sigmoid(raw + 2): with RealNVP's
  tanh-bounded expanding scale, a K=8 run's test mean bits/dim went from 1.49
  at 20k steps to 13.8 at 28k while the median stayed at 1.48 (a few test
  images scored up to 122,542 bits/dim).
Data: uniform dequantization (x + u) / 256 (`cpu_vardeq`: learned q(u | k));
  bits/dim on the 8-bit scale.
Samples: T = 1 in samples/, T = 0.7 (Glow's choice) in samples/samples_t07_*.

Commands (data: TFDS mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/glow_mnist.py --workdir runs/glow_mnist
      default: K=32, 512 channels, batch 64, 100k steps; one GPU, hours (not run here)
  python -m gen_jax.main --config experiments/glow_mnist.py:cpu --workdir runs/glow_mnist_cpu
      K=8, 128 channels, logit inputs, 60k steps of batch 64 (64 epochs), test
      bits/dim every 4k steps; 2 CPU cores (AMD EPYC) at 2.7-4.1 steps/s, so
      about 5 hours over several sittings: interrupt it at will (SIGTERM or
      Ctrl-C saves a checkpoint) and rerun to resume. Its predecessor (64
      channels, no learned priors, 4.3-6 steps/s) ended at 1.285 bits/dim
      (docs/history/glow_mnist_cpu_k8_h64).
  python -m gen_jax.main --config experiments/glow_mnist.py:cpu_vardeq --workdir runs/glow_mnist_cpu_vardeq
      the `cpu` run with Flow++'s variational dequantization: the uniform noise
      replaced by u ~ q(u | k), a 4-coupling conditional flow 16 channels wide
      trained with the model; its bits/dim are a one-sample estimate of that
      (tighter) bound
  python -m gen_jax.main --config experiments/glow_mnist.py:smoke --workdir /tmp/glow_smoke
      seconds on embedded digits; used by the tests
"""
from gen_jax import config_lib

realnvp_mnist = config_lib.sibling(__file__, "realnvp_mnist")

VARIANTS = ("cpu", "cpu_vardeq", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  vardeq = variant == "cpu_vardeq"
  variant = "cpu" if vardeq else variant
  # Default: the paper's depth K=32 and width 512 (Glow's CIFAR-10 model); two
  # levels, as 28x28 allows only two squeezes (Glow's L=3 needs 32x32).
  c = realnvp_mnist.image_flow_config(variant, arch="glow", levels=2, steps=32, hidden=512,
                                      preprocess="center", reference=1.05,
                                      cpu_steps=60_000, coupling_scale="sigmoid",
                                      cpu_hidden=128, learned_prior=True,
                                      dequantization="variational" if vardeq else "uniform")
  if variant == "cpu":
    # Logit space (alpha 0.05, counted in the likelihood), as RealNVP: at 2,000
    # steps of this schedule the test bits/dim was 1.806 with it and 2.144 with
    # the centred inputs.
    c.model.update(steps=8, preprocess="logit")
    c.eval_every_steps = 4000
  return c
