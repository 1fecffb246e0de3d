"""IWAE on dynamically binarized MNIST, Burda et al.'s 1-stochastic-layer architecture.

Reproduces (test log p(x), IWAE estimator k=5000, nats; Burda, Grosse &
  Salakhutdinov 2015, Table 1, 1 stochastic layer): IWAE k=5: -85.54;
  IWAE k=50: -84.78.
Architecture, optimizer and schedule: as experiments/vae_mnist.py (784-200-200-50
  tanh, Adam eps=1e-4, batch 20, 3,280 epochs) with the IWAE(k) objective.

Commands (data: TFDS mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/iwae_mnist.py:k50 --workdir runs/iwae50
      paper schedule; one GPU, days (not run here)
  python -m gen_jax.main --config experiments/iwae_mnist.py:k50_cpu --workdir runs/iwae50_cpu
      compressed schedule: rounds i=0..6 of 3^i "epochs" of 80 steps at batch 100
      (87,440 steps, 145.7 epochs; rounds 0..5 end at step 29,120, 48.5
      epochs). 2 CPU cores: ~15 steps/s, 7 min for each k=5000 evaluation of
      the 10k test images. Rerunning the command resumes; evaluate a kept
      checkpoint with --mode eval --step N. Measured: see README.
  python -m gen_jax.main --config experiments/iwae_mnist.py:k5 --workdir runs/iwae5
  python -m gen_jax.main --config experiments/iwae_mnist.py:k5_cpu --workdir runs/iwae5_cpu
      k=5 on the compressed schedule (not run here)
  python -m gen_jax.main --config experiments/iwae_mnist.py:smoke --workdir /tmp/iwae_smoke
      seconds; used by the tests
"""
from gen_jax import config_lib

vae_mnist = config_lib.sibling(__file__, "vae_mnist")

VARIANTS = ("k5", "k50", "k5_cpu", "k50_cpu", "smoke")


def get_config(arg: str = "k50"):
  variant = config_lib.parse_variant(arg or "k50", VARIANTS)
  if variant == "smoke":
    return vae_mnist.burda_config("smoke", objective="iwae", k=5)
  k, _, schedule = variant.partition("_")
  c = vae_mnist.burda_config(schedule, objective="iwae", k=int(k[1:]),
                             cpu_epoch_steps=80, cpu_rounds=7)
  if schedule == "cpu":
    # A k=50 step costs ~50 VAE steps: dispatch 20 at a time, log and save often.
    c.steps_per_dispatch, c.log_every_steps, c.ckpt_every_steps = 20, 1000, 2000
    c.keep_checkpoints = 50       # every 2,000 steps: the curve's evaluation points
  return c
