"""HMM inference speed: gen_jax forward-backward and Baum-Welch vs hmmlearn.

Command:  python benchmarks/bench_hmm.py [--rounds 5] [--reps 20] [--json out.json]
          (hmmlearn rows need `pip install hmmlearn==0.3.3`; skipped when absent)

The protocol of the HiddenMarkovModels.jl JOSS benchmark (Dalle 2024):
univariate Gaussian HMMs, 50 sequences x 100 steps sampled from
`gen_jax.data.hmm_data` ("hmm_gaussian", dim 1), K = 2, 5, 10 states. Rows:
  fb        forward-backward: the total log-likelihood and every smoothed
            marginal (gen_jax: one jitted vmap of `hmm_smoother` over the
            sequences; hmmlearn: `score_samples`, which also returns both)
  bw5       5 Baum-Welch iterations from the same initial parameters
            (gen_jax: one jitted `lax.scan` of e_step + m_step, traced once;
            hmmlearn: `fit` with n_iter=5, init_params="", tol=-inf)
gen_jax runs in float32 (its default) and float64 (jax_enable_x64, hmmlearn's
precision). Compile time (lower + compile of the jitted program) is reported
apart from run time; run times are ms per call, the median over rounds of
`--reps` calls each (the contenders alternate within a round). The final
log-likelihoods after bw5 are printed for both, as a check that they did the
same work (hmmlearn adds min_covar to its variances where gen_jax floors them
at min_var, so they differ slightly).

Reference (measured earlier on a 2-core CPU): hmmlearn forward-backward 18 / 13 /
19 ms and Baum-Welch x5 0.87 / 1.33 / 1.95 s (with k-means init) for K = 2 / 5
/ 10; dynamax fit_em 2.8-4.2 s per call (re-traced every call).
"""
import argparse
import os
import statistics
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config_lib
from gen_jax.data import hmm_data
from gen_jax.models import hmm

NUM_SEQ, SEQ_LEN, STATES = 50, 100, (2, 5, 10)
EM_ITERS = 5


def make_family(k: int):
  """(family, numpy data {obs f32[50, 100, 1], length}) for a K-state univariate Gaussian HMM."""
  split = hmm_data.load("hmm_gaussian", "train", options=dict(
      num_sequences=NUM_SEQ, seq_length=SEQ_LEN, num_states=k, dim=1, seed=0))
  c = config_lib.base()
  c.family = "hmm"
  c.model = ml_collections.ConfigDict(dict(
      num_states=k, emission="gaussian", topology="ergodic", pseudo_count=0.0,
      emission_pseudo_count=0.0, min_var=1e-3, init_spread=1.0))
  return hmm.make(c, split.spec), {k: split.arrays[k] for k in ("obs", "length")}


def initial_params(k: int) -> dict:
  """The family's seeded init (float32 numpy), shared by every contender of this K."""
  family, data = make_family(k)
  params, _ = jax.jit(family.init)(jax.random.key(0), {n: jnp.asarray(v) for n, v in data.items()})
  return jax.tree.map(np.asarray, params)


def gen_jax_contenders(k: int, x64: bool, init_params: dict):
  """{"fb": call, "bw5": call}, compile seconds, init probabilities, data, final loglik."""
  with jax.enable_x64(x64):
    family, data = make_family(k)
    batch = {name: jnp.asarray(v) for name, v in data.items()}
    dtype = jnp.float64 if x64 else jnp.float32
    params = jax.tree.map(lambda v: jnp.asarray(v, dtype), init_params)
    weights = jnp.ones((NUM_SEQ,), params["model"]["means"].dtype)

    def fb(params, batch):
      post = hmm.posterior(params["model"], batch["obs"], batch["length"])
      return post.log_normalizer.sum(), post.smoothed

    def bw(params, batch):
      def body(p, _):
        stats = family.em.e_step(p, {}, batch, weights)
        return family.em.m_step(p, {}, stats)[0], stats["loglik"]
      return jax.lax.scan(body, params, None, length=EM_ITERS)

    compiled, compile_s = {}, {}
    for name, fn in (("fb", fb), ("bw5", bw)):
      t0 = time.perf_counter()
      compiled[name] = jax.jit(fn).lower(params, batch).compile()
      compile_s[name] = time.perf_counter() - t0
    final = float(family.em.e_step(compiled["bw5"](params, batch)[0], {}, batch,
                                   weights)["loglik"])
    init = jax.tree.map(np.asarray, hmm.probabilities(params["model"]))

  def call(name):
    def run():
      jax.block_until_ready(compiled[name](params, batch))
    return run

  return {"fb": call("fb"), "bw5": call("bw5")}, compile_s, init, data, final


def hmmlearn_contenders(hmm_lib, init: dict, data: dict):
  """hmmlearn GaussianHMM (diag) from the same parameters: calls and the final loglik."""
  n = data["length"]
  x = np.concatenate([data["obs"][i, :n[i]] for i in range(NUM_SEQ)]).astype(np.float64)
  k = len(init["start"])

  def model(n_iter):
    m = hmm_lib.GaussianHMM(k, covariance_type="diag", n_iter=n_iter, tol=-np.inf,
                            init_params="", params="stmc", implementation="log")
    m.startprob_, m.transmat_ = init["start"].astype(np.float64), init["trans"].astype(np.float64)
    m.means_, m.covars_ = init["means"].astype(np.float64), init["vars"].astype(np.float64)
    return m

  fixed = model(1)
  fitted = model(EM_ITERS).fit(x, n)
  return ({"fb": lambda: fixed.score_samples(x, n), "bw5": lambda: model(EM_ITERS).fit(x, n)},
          float(fitted.score(x, n)))


def timed(fn, reps: int) -> float:
  t0 = time.perf_counter()
  for _ in range(reps):
    fn()
  return (time.perf_counter() - t0) * 1e3 / reps


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
  parser.add_argument("--reps", type=int, default=20, help="calls per round per contender "
                      "(bw5: reps // 10, at least 1)")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.reps < 1:
    parser.error("--rounds and --reps must be >= 1")
  try:
    import hmmlearn  # pylint: disable=g-import-not-at-top
    from hmmlearn import hmm as hmm_lib  # pylint: disable=g-import-not-at-top
    hmmlearn_version, skipped = hmmlearn.__version__, []
  except ImportError as e:
    hmm_lib, hmmlearn_version = None, None
    skipped = [f"hmmlearn: {e} (pip install hmmlearn==0.3.3 for its rows)"]
    print(f"hmmlearn absent ({e}); timing gen_jax only")
  print(f"jax {jax.__version__}: {jax.default_backend()}, {jax.devices()[0].device_kind}")

  ms, per_round, compile_s, final_ll = {}, {}, {}, {}
  for k in STATES:
    contenders, init_params = {}, initial_params(k)
    for x64 in (False, True):
      tag = "gen_jax_f64" if x64 else "gen_jax_f32"
      calls, comp, init, data, final = gen_jax_contenders(k, x64, init_params)
      contenders.update({f"{tag}/{op}": fn for op, fn in calls.items()})
      compile_s.update({f"K={k}/{tag}/{op}": s for op, s in comp.items()})
      final_ll[f"K={k}/{tag}"] = final
    if hmm_lib is not None:
      calls, final = hmmlearn_contenders(hmm_lib, init, data)
      contenders.update({f"hmmlearn/{op}": fn for op, fn in calls.items()})
      final_ll[f"K={k}/hmmlearn"] = final
    names = list(contenders)
    for name in names:
      contenders[name]()                       # warm up
    rounds = {name: [] for name in names}
    for r in range(args.rounds):
      shift = r % len(names)
      for name in names[shift:] + names[:shift]:
        reps = args.reps if name.endswith("fb") else max(args.reps // 10, 1)
        rounds[name].append(timed(contenders[name], reps))
    for name in names:
      ms[f"K={k}/{name}"] = statistics.median(rounds[name])
      per_round[f"K={k}/{name}"] = rounds[name]
    print(f"K={k}: " + ", ".join(f"{n} {ms[f'K={k}/{n}']:.2f} ms" for n in names), flush=True)

  print(f"\nms per call, median of {args.rounds} rounds; {NUM_SEQ} sequences x {SEQ_LEN} steps, "
        f"univariate Gaussian\n")
  print("| K | op | gen_jax f32 | gen_jax f64 | hmmlearn | compile f32 / f64 (s) |")
  print("|---|---|---:|---:|---:|---:|")
  for k in STATES:
    for op in ("fb", "bw5"):
      h = ms.get(f"K={k}/hmmlearn/{op}")
      print(f"| {k} | {op} | {ms[f'K={k}/gen_jax_f32/{op}']:.2f} | "
            f"{ms[f'K={k}/gen_jax_f64/{op}']:.2f} | {'n/a' if h is None else f'{h:.2f}'} | "
            f"{compile_s[f'K={k}/gen_jax_f32/{op}']:.2f} / "
            f"{compile_s[f'K={k}/gen_jax_f64/{op}']:.2f} |")
  print("\nlog-likelihood after 5 Baum-Welch iterations (nats, all 50 sequences):")
  for key, v in final_ll.items():
    print(f"  {key}: {v:.4f}")

  report = common.fields(
      "hmm_forward_backward_and_baum_welch",
      data=f"hmm_gaussian dim 1, {NUM_SEQ} sequences x {SEQ_LEN} steps, seed 0",
      hmmlearn_version=hmmlearn_version,
      load_average_at_end=os.getloadavg(),
      rounds=args.rounds, reps=args.reps,
      ms_per_call=ms, ms_per_call_per_round=per_round,
      compile_seconds=compile_s, loglik_after_bw5=final_ll, skipped=skipped,
  )
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
