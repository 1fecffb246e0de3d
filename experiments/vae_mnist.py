"""VAE (k=1) on dynamically binarized MNIST, Burda et al.'s 1-stochastic-layer architecture.

Reproduces: test log p(x) = -86.76 nats (VAE, 1 stochastic layer, k=1), Burda,
  Grosse & Salakhutdinov 2015, "Importance Weighted Autoencoders", Table 1;
  evaluated with the IWAE estimator at k=5000 on the 10k test set
  (binarized once, seed 0).
Architecture: 784-200-200-50 (tanh), mirrored decoder, Bernoulli likelihood.
Optimizer: Adam(b1=0.9, b2=0.999, eps=1e-4), batch 20, lr 1e-3 * 10^(-i/7) for
  3^i epochs, i = 0..7 (3,280 epochs, 9.84M steps).

Commands (data: TFDS mnist via TFDS_DATA_DIR, or --config.data.download=True):
  python -m gen_jax.main --config experiments/vae_mnist.py --workdir runs/vae_mnist
      paper schedule; one GPU, days (not run here)
  python -m gen_jax.main --config experiments/vae_mnist.py:cpu --workdir runs/vae_mnist_cpu
      the same 8 rounds with each "epoch" shortened to 200 steps of batch 100
      (1/3 epoch: 1,093 epochs, 656,000 steps); 2 CPU cores: 1.5 h of training
      (while sharing the cores with a second run) plus ~18 min for the k=5000
      evaluation. Measured: 88.23 nats (see README).
  python -m gen_jax.main --config experiments/vae_mnist.py:cond --workdir runs/vae_mnist_cond
      class-conditional VAE (model.num_classes=10, data.labels=True: the one-hot
      label joins the encoder and decoder inputs, Kingma et al. 2014 M2-style
      conditioning / Sohn et al. 2015 CVAE), the same 784-200-200-50 net, batch 100,
      the Burda schedule for 3 rounds of 600-step "epochs" (7,800 steps, 13 epochs).
      No paper number: it reports the class-marginal -log p(x) (IWAE, k=100,
      1,000 test digits) and a 10x10 sample grid whose column j is class j; it is
      the generator of experiments/augmentation_mnist.py. Measured on 2 shared
      CPU cores: 2.5 min of training, 2 min of evaluation, 100.3 ± 0.9 nats.
  python -m gen_jax.main --config experiments/vae_mnist.py:cond_smoke --workdir /tmp/cvae_smoke
      the cond variant at smoke size on embedded digits; seconds (the augmentation
      smoke's generator)
  python -m gen_jax.main --config experiments/vae_mnist.py:smoke --workdir /tmp/vae_smoke
      seconds; used by the tests
"""
from gen_jax import config_lib, optim

VARIANTS = ("cpu", "cond", "cond_smoke", "smoke")
TRAIN_EXAMPLES = 60000


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  if variant in ("cond", "cond_smoke"):
    return conditional_config(variant == "cond_smoke")
  return burda_config(variant, objective="elbo", k=1)


def conditional_config(smoke: bool):
  """The class-conditional VAE p(x | y) of the "cond" variants (see the header)."""
  c = burda_config("smoke" if smoke else "cpu", objective="elbo", k=1, cpu_epoch_steps=600,
                   cpu_rounds=3)
  c.model.num_classes = 10
  c.data.labels = True
  c.reference.update(value=0.0, source="no paper number (class-conditional VAE)")
  c.log_every_steps, c.ckpt_every_steps = 600, 2600
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=100, num_examples=1000,
                   kwargs=dict(k=100, chunk=100)),
      samples=dict(type="samples", num=100),
  )
  if smoke:
    c.log_every_steps = c.ckpt_every_steps = 10
    c.evals.test_ll.update(num_examples=40, batch_size=20, kwargs=dict(k=10, chunk=10))
    c.evals.samples.num = 20
  return c


def burda_config(variant: str, objective: str, k: int, cpu_epoch_steps: int = 200,
                 cpu_rounds: int = 8):
  """Burda et al. 2015 MLP VAE/IWAE on MNIST; `variant` picks the schedule.

  "" is the paper's schedule; "cpu" keeps its shape (lr 1e-3 * 10^(-i/7) for
  3^i "epochs") with batch 100 and `cpu_epoch_steps` steps per "epoch", for
  `cpu_rounds` rounds; "smoke" is a seconds-long run on embedded digits.
  """
  c = config_lib.base()
  c.family = "vae"
  c.model = dict(arch="mlp", hidden=(200, 200), latent_dim=50, activation="tanh",
                 likelihood="bernoulli", objective=objective, k=k, beta=1.0,
                 num_classes=0)
  c.data.update(name="mnist", variant="binarized_dynamic", batch_size=20)
  rounds, epoch_steps = 8, TRAIN_EXAMPLES // c.data.batch_size
  if variant == "cpu":
    c.data.batch_size, rounds, epoch_steps = 100, cpu_rounds, cpu_epoch_steps
  c.optim.model = optim.adam(1e-3, eps=1e-4, schedule="burda",
                             epoch_steps=epoch_steps, rounds=rounds)
  c.total_steps = optim.burda_total_steps(epoch_steps, rounds)
  c.steps_per_dispatch = 100
  c.log_every_steps = 6000 if variant else 30000
  c.ckpt_every_steps = 24000 if variant else 300000
  paper = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}
  c.reference.update(metric="test_ll/nll_iwae", value=paper.get((objective, k), 0.0),
                     source="Burda et al. 2015, Table 1 (1 stochastic layer)",
                     epochs=float(optim.burda_total_steps(1, 8)))   # 3^0 + ... + 3^7 passes
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=100, num_examples=0,
                   kwargs=dict(k=5000, chunk=500)),
      interp=dict(type="interpolation", num=8, steps=10),
  )
  if variant == "smoke":
    c.reference.value = 0.0    # digits, seconds: nothing to compare with
    c.data.update(name="digits", batch_size=20)
    c.model.hidden = (32, 32)
    c.model.latent_dim = 4
    c.optim.model.update(epoch_steps=2, rounds=3)
    c.total_steps, c.steps_per_dispatch = 20, 2
    c.log_every_steps = c.ckpt_every_steps = 10
    c.evals.test_ll.update(num_examples=40, batch_size=20, kwargs=dict(k=20, chunk=10))
  return c
