"""A mixture of multivariate Bernoullis on statically binarized MNIST, by EM.

Command:  python -m gen_jax.main --config experiments/mob_binarized_mnist.py --workdir runs/mob_binarized_mnist
Hardware: 2 CPU cores, minutes (the 50,000-image train split is one batch;
          one step is one EM iteration over it).
Target:   test log-likelihood ≈ -137.64 nats per image with 500 components
          (the mixture-of-Bernoullis row of Salakhutdinov & Murray 2008 and
          Larochelle & Murray 2011, Table 2), on the same 10,000 test images
          (TFDS binarized_mnist, Larochelle's fixed binarization) as the
          NADE/MADE/PixelCNN rows. Exact, not a bound.
Variants: "" (K=500), "k100" (K=100), "smoke" (embedded digits, one fixed
          binarization, seconds; used by the tests).
"""
from gen_jax import config_lib

VARIANTS = ("k100", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "mixture_bernoulli"
  c.trainer = "em"
  c.model = dict(num_components=500, pseudo_count=1e-3, init="kmeans++", kmeans_iters=5,
                 min_count=1e-6)
  c.data.update(name="binarized_mnist", variant="binarized_static", batch_size=0,
                eval_split="test")
  c.em.update(tol=1e-4, decrease_tol=1e-4)
  c.total_steps = 300
  c.log_every_steps = 5
  c.ckpt_every_steps = 25
  c.num_samples = 100
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=1000, num_examples=0))
  c.reference = dict(metric="test_ll/log_px", value=-137.64,
                     source="Salakhutdinov & Murray 2008; Larochelle & Murray 2011, Table 2")
  if variant == "k100":
    c.model.num_components = 100
  if variant == "smoke":
    c.model.update(num_components=4, kmeans_iters=2)
    c.data.update(name="digits", variant="binarized_dynamic")
    c.em.tol = 0.0
    c.total_steps = 4
    c.log_every_steps = 2
    c.ckpt_every_steps = 2
    c.num_samples = 16
    c.evals.test_ll.batch_size = 297
    c.reference.value = 0.0   # digits, seconds: nothing to compare with
  return c
