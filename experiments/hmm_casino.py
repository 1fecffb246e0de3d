"""The occasionally dishonest casino: a 2-state categorical HMM fitted by Baum-Welch (EM).

Data: "casino" (gen_jax.data.hmm_data; Durbin et al. 1998, ch. 3): a fair die
  and a loaded one (P(6) = 0.5), A = [[0.95, 0.05], [0.10, 0.90]], start
  (0.5, 0.5); 100 training sequences x 1,000 rolls (1e5 steps) and an
  independent test set of the same size, sampled with fixed seeds.
Target: parameter recovery up to label permutation (transition and emission
  probabilities within a few 0.01 of the truth after Hungarian matching) and
  Viterbi state accuracy close to that of the true parameters on the test
  set; for reference, hmmlearn's Viterbi with the true parameters scores 0.796
  against the true states on one T = 1e5 casino sequence (measured on
  a 2-core CPU). The run also reports the learned and true test log-likelihoods
  per step (nats, exact).
Commands:
  python -m gen_jax.main --config experiments/hmm_casino.py --workdir runs/hmm_casino
      EM in float64 (config.x64) until the log-likelihood per sequence changes
      by less than 1e-6 nats (at most 500 iterations); 2 CPU cores, ~15 s of
      training (converged at iteration 188). Measured: test Viterbi accuracy
      0.7914 (true parameters 0.7928), max |error| start 0.005, transitions
      0.008, emissions 0.006; test log p = -1.7411 nats per roll, equal to the
      true model's to 4 digits
  python -m gen_jax.main --config experiments/hmm_casino.py:sgd --workdir runs/hmm_casino_sgd
      the same model and data by Adam on -log p(x) (minibatches of 10
      sequences, 1,500 steps, float32); 2 CPU cores, about 10 s of training.
      Reaches the EM optimum: train loss 1744.0 vs EM's 1743.97 nats per
      sequence, test Viterbi accuracy 0.792 vs EM's 0.791 (true params 0.793)
  python -m gen_jax.main --config experiments/hmm_casino.py:smoke --workdir /tmp/hmm
      8 sequences of 30-50 rolls, 5 EM iterations, tol 0; seconds (the tests)
Variants: "" (EM), "sgd" (gradient route), "smoke".
"""
import ml_collections

from gen_jax import config_lib, optim

VARIANTS = ("sgd", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.family = "hmm"
  c.trainer = "em"
  c.model = dict(num_states=2, emission="categorical", topology="ergodic", pseudo_count=0.0,
                 emission_pseudo_count=0.0, min_var=1e-3, init_spread=1.0)
  c.data.update(name="casino", variant="raw", batch_size=0)
  c.data.options = ml_collections.ConfigDict(dict(num_sequences=100, seq_length=1000,
                                                  min_length=1000, seed=0))
  c.x64 = True
  c.em = ml_collections.ConfigDict(dict(tol=1e-6, decrease_tol=1e-6))
  c.total_steps = 500
  c.steps_per_dispatch = 10
  c.log_every_steps = 10
  c.ckpt_every_steps = 100
  c.seed = 0
  c.num_samples = 8
  c.evals = dict(
      test_ll=dict(type="likelihood", batch_size=100, num_examples=0),
      recovery=dict(type="hmm_recovery", batch_size=100),
  )
  c.reference = dict(metric="recovery/viterbi_accuracy", value=0.796,
                     source="hmmlearn 0.3.3 Viterbi with the true parameters, one T=1e5 "
                            "casino sequence (measured)")
  if variant == "sgd":
    c.trainer = "sgd"
    c.x64 = False
    c.data.batch_size = 10
    c.optim.model = optim.adam(0.05)
    c.total_steps = 1500
    c.steps_per_dispatch = 50
    c.log_every_steps = 100
    c.ckpt_every_steps = 500
  if variant == "smoke":
    c.data.options.update(num_sequences=8, seq_length=50, min_length=30)
    c.x64 = False
    c.em.update(tol=0.0, decrease_tol=1e-3)
    c.total_steps = 5
    c.steps_per_dispatch = 1
    c.log_every_steps = 5
    c.ckpt_every_steps = 5
    c.num_samples = 4
    c.evals.test_ll.batch_size = 8
    c.evals.recovery.batch_size = 8
  return c
