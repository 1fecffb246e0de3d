"""A 2-hidden-layer deep belief network stacked greedily on an MNIST RBM; AIS variational bound.

Reproduces: a lower bound of ~ -86.22 nats on the average test log-probability
  (Salakhutdinov & Murray 2008, Table 3: a DBN whose first layer is the
  CD25(500) RBM of experiments/rbm_mnist.py, second RBM with 2000 hidden
  units; the bound uses AIS for log Z of the top RBM).
Data: MNIST binarized once ("binarized_fixed", seed 2008), as rbm_mnist.py.
Greedy stacking: one run per layer. The first layer is an rbm_mnist.py run
  (its parameters live at params/model/layer_0, the DBN's first layer); this
  run copies it through `init_from`, freezes it, and trains the top RBM by
  CD on hidden states sampled upwards from the data. A top layer with as many
  hidden units as the layer below has visible units (e.g. 500-784 on 784
  pixels) starts as the TRANSPOSE of that layer, where the bound equals the
  one-layer RBM's exactly; other sizes start from small random weights.
Evaluation ("ais"): the bound E_q[log p(v|h1) + log p*(h1)] + H(q) - log Z^
  (10 upward samples per test example; log Z^ of the top RBM by 100 AIS chains
  x 14,503 inverse temperatures from the base-rate model of the training
  data's hidden activities), labelled "AIS estimate", ± s.e.; and RAISE in place
  of log p_top on the first 100 test examples (a second, independent estimate).

Commands (train the first layer first; init_from names its workdir):
  python -m gen_jax.main --config experiments/rbm_mnist.py:cd25 --workdir runs/rbm_mnist_cd25
  python -m gen_jax.main --config experiments/dbn_mnist.py --workdir runs/dbn_mnist
      paper shape, 784-500-2000, top RBM by CD-k rising 1 -> 25 for 100 epochs; GPU
  python -m gen_jax.main --config experiments/dbn_mnist.py:cpu --workdir runs/dbn_mnist_cpu
      784-500-784 from the transpose of runs/rbm_mnist_cd1 (train that with
      rbm_mnist.py:cd1), top RBM by CD-1 for 30 epochs; 2 CPU cores,
      about 20 minutes with the full AIS (see README)
  python -m gen_jax.main --config experiments/dbn_mnist.py:smoke --workdir /tmp/dbn_smoke
      seconds on CPU; digits, 64-16-64, no init_from (its first layer stays
      at its random start: a plumbing check only); used by the tests
"""
from gen_jax import config_lib

VARIANTS = ("cpu", "smoke")
TRAIN_EXAMPLES = 60000


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  rbm_mnist = config_lib.sibling(__file__, "rbm_mnist")
  c = config_lib.base()
  c.family = "dbn"
  c.model = dict(hidden=(500, 2000), top_data="sample", method="cd", k=1, k_final=25,
                 k_ramp_steps=0, pcd_chains=0, weight_cost=2e-4, init_scale=0.01,
                 init_hidden_bias=0.0, negative_visible="sample")
  c.data.update(name="mnist", variant="binarized_fixed", batch_size=100, eval_split="test")
  c.init_from.workdir = "runs/rbm_mnist_cd25"
  epochs = 100
  if variant == "cpu":
    c.model.update(hidden=(500, 784), k_final=0)
    c.init_from.workdir = "runs/rbm_mnist_cd1"
    epochs = 30
  c.total_steps = epochs * TRAIN_EXAMPLES // c.data.batch_size
  if c.model.k_final:
    c.model.k_ramp_steps = c.total_steps
  c.optim.model = rbm_mnist.sgd(0.05, 0.9, c.total_steps)
  c.steps_per_dispatch = 100
  c.log_every_steps = 3000
  c.ckpt_every_steps = 6000
  c.num_samples = 100
  c.sample.sweeps = 1000
  c.evals = dict(test_ais=dict(type="ais", batch_size=500, num_examples=0, chains=100,
                               schedule="paper", base="base_rate", base_pseudo_count=1.0,
                               exact_max_units=20, samples=10, raise_examples=100,
                               raise_chains=1, raise_schedule="paper"))
  c.reference.update(metric="test_ais/log_px_lower_bound", value=-86.22,
                     source="Salakhutdinov & Murray 2008, Table 3 (AIS lower bound)",
                     also=("test_ais/log_z", "test_ais/raise_minus_ais"))
  if variant == "cpu":
    c.reference.value = 0.0   # a CD-1 first layer: no published number for this stack
  if variant == "smoke":
    c.reference.value = 0.0
    c.init_from.workdir = ""
    c.data.update(name="digits", batch_size=50)
    c.model.update(hidden=(16, 64), k_final=0)
    c.total_steps, c.steps_per_dispatch = 10, 5
    c.log_every_steps = c.ckpt_every_steps = 5
    c.optim.model = rbm_mnist.sgd(0.05, 0.5, c.total_steps)
    c.num_samples, c.sample.sweeps = 16, 20
    c.evals.test_ais.update(batch_size=297, chains=16, schedule="linear", num_betas=50,
                            samples=2, raise_examples=8, raise_chains=2,
                            raise_schedule="linear", raise_num_betas=50)
  return c
