"""RealNVP (multi-scale affine couplings) on 8-bit dequantized MNIST, test bits/dim.

Reproduces: 1.06 bits/dim on the MNIST test set (RealNVP as run by Grathwohl
  et al. 2019, "FFJORD", Table 2). Target: within 0.1 bits/dim at the
  default schedule; the CPU variant's number is reported as measured.
Model: 3 scales (28x28x1 -> 14x14x2 -> 7x7x4 kept, the rest factored out),
  3 checkerboard + 3 channel couplings per scale (4 checkerboard at the last),
  conv conditioners with `hidden` channels, ActNorm after every coupling,
  logit preprocessing (alpha 0.05) counted in the likelihood.
Data: uniform dequantization (x + u) / 256; bits/dim on the 8-bit scale.

Commands (data: TFDS mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/realnvp_mnist.py --workdir runs/realnvp_mnist
      default: 64 channels, batch 64, 100k steps (107 epochs); one GPU, hours (not run here)
  python -m gen_jax.main --config experiments/realnvp_mnist.py:cpu --workdir runs/realnvp_mnist_cpu
      the default architecture (64 channels), 28k steps of batch 64 (29.9 epochs),
      peak learning rate 3e-4 (1e-3 diverges at this width),
      test bits/dim every 2k steps (the learning curve in metrics.jsonl); 2 CPU
      cores at about 3.5-4 steps/s, so about 2 hours: interrupt it at will (SIGTERM
      or Ctrl-C saves a checkpoint) and rerun the same command to resume
  python -m gen_jax.main --config experiments/realnvp_mnist.py:smoke --workdir /tmp/realnvp_smoke
      seconds on embedded digits; used by the tests
"""
from gen_jax import config_lib, optim

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  # The cpu variant's peak learning rate: at 1e-3 it diverged within 500 steps
  # (training loss 58.7 then 1,078 bits/dim, gradient norms up to 5e6); 3e-4 was stable.
  return image_flow_config(variant, arch="realnvp", levels=3, steps=3,
                           preprocess="logit", reference=1.06, cpu_lr=3e-4)


def image_flow_config(variant: str, arch: str, levels: int, steps: int, preprocess: str,
                      reference: float, hidden: int = 64, cpu_hidden: int = 64,
                      cpu_steps: int = 28_000, coupling_scale: str = "tanh",
                      cpu_lr: float = 1e-3, learned_prior: bool = False,
                      dequantization: str = "uniform"):
  """Shared by the image-flow experiments; `variant` picks the schedule.

  `dequantization="variational"` adds the model keys of a learned q(u | k)
  (Flow++'s variational dequantization; the config of a uniform run has none).
  """
  c = config_lib.base()
  c.family = "flow"
  c.model = dict(arch=arch, levels=levels, steps=steps, hidden=hidden, scale_bound=2.0,
                 coupling_scale=coupling_scale, learned_prior=learned_prior, actnorm=True,
                 preprocess=preprocess, logit_alpha=0.05, temperature=1.0)
  if dequantization != "uniform":
    c.model.update(dequantization=dequantization, deq_hidden=16, deq_steps=4)
  c.data.update(name="mnist", variant="dequantized_8bit", batch_size=64)
  # Warmup: without it, Glow's first few hundred steps spike (grad norm ~1e5).
  c.optim.model = optim.adam(1e-3, schedule="cosine", warmup_steps=2000,
                             decay_steps=100_000, final_lr_frac=0.01, grad_clip_norm=100.0)
  c.total_steps = 100_000
  # One step per dispatch: on XLA:CPU, conv train steps inside lax.scan ran 4.5x
  # slower than single jitted steps (Glow, measured on 2 cores).
  c.steps_per_dispatch = 1
  c.log_every_steps = 1000
  c.ckpt_every_steps = 5000
  c.num_samples = 64
  c.reference.update(metric="test_ll/bpd", value=reference,
                     source="FFJORD (Grathwohl et al. 2019), Table 2")
  c.evals = dict(
      # The median and the largest value beside the mean: a few test images with an
      # extreme -log p(x) can dominate a flow's mean bits/dim.
      test_ll=dict(type="likelihood", batch_size=500, num_examples=0,
                   quantiles=(50, 99, 100)),
      # The same images, each scored by 16 dequantizations, importance weighted: a tighter
      # bound than test_ll's one draw, 16 times its cost (at the end and --mode eval only).
      test_iw=dict(type="likelihood", batch_size=500, num_examples=0, kwargs=dict(k=16),
                   periodic=False),
      samples_t07=dict(type="samples", num=64, kwargs=dict(temperature=0.7)),
  )
  if variant == "cpu":
    c.model.update(hidden=cpu_hidden)
    c.total_steps = cpu_steps
    c.optim.model.update(lr=cpu_lr, warmup_steps=1000, decay_steps=cpu_steps)
    c.ckpt_every_steps = 1000
    c.log_every_steps = 250
    c.eval_every_steps = 2000
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.data.update(name="digits", batch_size=32)
    c.model.update(hidden=8, steps=1, levels=2)
    c.optim.model.update(warmup_steps=2, decay_steps=20)
    c.total_steps = 20
    c.log_every_steps = c.ckpt_every_steps = 10
    c.evals.test_ll.update(num_examples=64, batch_size=32)
    c.evals.test_iw.update(num_examples=32, batch_size=32, kwargs=dict(k=2))
    c.evals.samples_t07.num = 16
  return c
