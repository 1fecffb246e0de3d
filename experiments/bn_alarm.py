"""ALARM (Beinlich et al. 1989; 37 variables, 46 edges, 509 free parameters): CPDs learned
from N cases sampled from the true network, for N = 10^2 ... 10^5.

Command:  BNLEARN_DIR=<folder of bnlearn .bif[.gz] files> \\
            python -m gen_jax.main --config experiments/bn_alarm.py:n1000 \\
            --workdir runs/bn_alarm_n1000
          (or --config.data.path=alarm.bif.gz, or pip install pgmpy==1.1.2, whose wheel
          bundles alarm.bif.gz; without one of them the run stops with that advice)
Hardware: 2 CPU cores (shared); 40-70 s per variant end to end, of which the EM step
          is ~5 s and the rest start-up, compilation and exact VE evaluation of 10,000
          test cases and 1,000 x 12 posterior queries; the synthetic-case metrics add
          ~10 s.
Target:   held-out log-likelihood per case of the learned network approaching the true
          network's own (the ceiling, reported beside it as queries/log_px_true) as N
          grows 10^2 ... 10^5; the gap (queries/gap, nats per case) and the KL of root
          posteriors given the leaves (queries/query_kl) shrinking roughly like 1/N.
          No published number: the ceiling is computed exactly on the same test cases.
          Measured (seed 0; true network -10.417 nats per case on the 10,000 test cases):
              N        learned    gap (+- sem)      query_kl   query_abs_err
              100      -11.453    1.036 (0.016)     2.1e-2     2.8e-2
              1,000    -10.592    0.175 (0.006)     3.9e-3     9.3e-3
              10,000   -10.442    0.025 (0.002)     3.6e-4     3.0e-3
              100,000  -10.419    0.0022 (0.0008)   3.5e-5     8.6e-4
          For large N the gap meets the asymptotic (free parameters) / (2N) = 254.5 / N
          nats (0.025 at 10^4, 0.0025 at 10^5); at small N smoothing keeps it below that.
          Synthetic cases (tabular/*, evaluator synthetic_tabular): min(10,000, N) cases
          sampled from the learned network against the 10,000 test cases: marginal and
          pairwise total variation and train-on-synthetic/test-on-real accuracy of the last
          variable (BP), each beside its floor, the same metric for as many real training
          cases (a perfect learner matches the floor, not 0). Measured (seed 0; floor in
          parentheses):
              N        marginal_tv_mean   pairwise_tv_mean   tstr_accuracy (real-trained)
              100      0.055 (0.035)      0.098 (0.068)      0.727 (0.738)
              1,000    0.015 (0.013)      0.027 (0.024)      0.790 (0.803)
              10,000   0.0052 (0.0040)    0.0097 (0.0083)    0.813 (0.815)
          (majority class of BP: 0.40).
Method:   complete data, so EM converges in one iteration: the M-step turns the observed
          counts into P(x | u) = (n_ux + 0.5) / (n_u + 0.5 K) (pseudo_count 0.5: the
          Krichevsky-Trofimov / Jeffreys-prior estimate, the MAP under Dirichlet(1.5)); an
          unsmoothed MLE gives unseen parent/child combinations probability ~0 and a
          held-out log-likelihood of about -23 nats per unseen entry at small N. The
          logged loss of step 1 is that of the initial (uniform) CPDs; the evaluation
          uses the learned ones.
Variants: n100, n1000, n10000 (default ""), n100000: N training cases (10,000 test cases);
          "smoke": the embedded ASIA network, 200 cases (seconds; used by the tests).
"""
from gen_jax import config_lib

VARIANTS = ("n100", "n1000", "n10000", "n100000", "smoke")
PSEUDO_COUNT = 0.5   # Krichevsky-Trofimov smoothing (Dirichlet(1.5) MAP) of every CPT row


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  network, n_train, n_test = "alarm", 10_000, 10_000
  if variant.startswith("n"):
    n_train = int(variant[1:])
  if variant == "smoke":
    network, n_train, n_test = "asia", 200, 100
  c = config_lib.base()
  c.family = "bayes_net"
  c.trainer = "em"
  c.model = dict(network=network, hidden=(), pseudo_count=PSEUDO_COUNT, init_scale=0.0,
                 min_prob=1e-10, order="min_fill")
  c.data.update(name="bnlearn", variant="raw", batch_size=0, description=f"{network} samples",
                options=dict(network=network, num_train=n_train, num_test=n_test, seed=0))
  c.em.update(tol=0.0)
  c.x64 = False
  c.total_steps = 1
  c.log_every_steps = 1
  c.ckpt_every_steps = 1
  c.num_samples = 64
  c.evals = dict(queries=dict(type="bn_queries", num_queries=1000, batch_size=2000),
                 # Sampled c.num_samples at a time: the program that wrote the samples.
                 tabular=dict(type="synthetic_tabular", num_samples=10_000, target="",
                              classifier="logistic", batch_size=c.num_samples))
  if variant == "smoke":
    c.evals.queries.update(num_queries=50, batch_size=100)
    c.evals.tabular.num_samples = 200
  return c
