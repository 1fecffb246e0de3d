"""MAF (masked autoregressive flow) on 8-bit dequantized MNIST in logit space, test bits/dim.

Reproduces: about 1.89 bits/dim on the MNIST test set (MAF, Papamakarios et
  al. 2017, as requoted in FFJORD (Grathwohl et al. 2019), Table 2; the MAF
  paper reports MAF(5) at -1300.5 nats in logit space). Target: within 0.1
  bits/dim at the default schedule; the CPU variant's number is reported as
  measured.
Model: 5 MADE affine layers on the flattened 784-vector, order reversed
  between layers, ActNorm before each (in place of the paper's batch norm),
  MADE hidden sizes `hidden`; logit preprocessing with lambda = 1e-6 as in
  the paper, its Jacobian counted, so bits/dim are on the 8-bit pixel scale.
Sampling inverts each MADE with 784 sequential passes.

Commands (data: TFDS mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/maf_mnist.py --workdir runs/maf_mnist
      default: 2 x 1024 hidden units, batch 100, 100k steps (167 epochs); one GPU (not run here)
  python -m gen_jax.main --config experiments/maf_mnist.py:cpu --workdir runs/maf_mnist_cpu
      2 x 512 hidden units, 3k steps of batch 100 (5 epochs); 2 CPU cores, under an hour
  python -m gen_jax.main --config experiments/maf_mnist.py:smoke --workdir /tmp/maf_smoke
      seconds on embedded digits; used by the tests
"""
from gen_jax import config_lib, optim

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "flow"
  c.model = dict(arch="maf", steps=5, hidden=(1024, 1024), scale_bound=3.0, actnorm=True,
                 preprocess="logit", logit_alpha=1e-6, temperature=1.0)
  c.data.update(name="mnist", variant="dequantized_8bit", batch_size=100)
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=1000,
                             decay_steps=100_000, final_lr_frac=0.01, grad_clip_norm=100.0)
  c.total_steps = 100_000
  c.steps_per_dispatch = 50
  c.log_every_steps = 1000
  c.ckpt_every_steps = 5000
  c.num_samples = 64
  c.reference.update(metric="test_ll/bpd", value=1.89,
                     source="MAF (Papamakarios et al. 2017) as requoted in FFJORD, Table 2")
  c.evals = dict(test_ll=dict(type="likelihood", batch_size=500, num_examples=0))
  if variant == "cpu":
    c.model.hidden = (512, 512)
    c.total_steps = c.optim.model.decay_steps = 3000
    c.optim.model.warmup_steps = 500
    c.ckpt_every_steps = 1000
    c.log_every_steps = 250
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.data.update(name="digits", batch_size=32)
    c.model.update(hidden=(32,), steps=2)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.num_samples = 16
    c.evals.test_ll.update(num_examples=64, batch_size=32)
  return c
