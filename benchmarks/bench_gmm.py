"""GMM EM speed: gen_jax's EM iteration vs scikit-learn's, from the same initialization.

Command:  python benchmarks/bench_gmm.py [--rounds 5] [--iters 20] [--json out.json]

Data: scikit-learn's 8x8 digits train split (1,500 x 64, pixels / 255, as in
experiments/gmm_digits.py). Both contenders start from the same parameters
(gen_jax's k-means++ init copied into sklearn's GaussianMixture) and run
`--iters` EM iterations in float64 with reg_covar 1e-6:
  gen_jax       the "em" trainer's step (E-step sums + closed-form M-step),
                jitted once; `--iters` steps in one lax.scan
  sklearn       GaussianMixture's own _e_step / _m_step, the loop `fit` runs
Compile time is reported apart from run time. Each round times every
contender in turn (the order alternates); the table shows the median ms per
iteration and the ratio sklearn / gen_jax, and checks that both reach the
same log-likelihood (they run the same algorithm from the same start).
Run it on a quiet machine: other processes on the cores skew the ratio.
"""
import argparse
import os
import statistics
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config_lib
from gen_jax.data import sources
from gen_jax.data import spec as spec_lib
from gen_jax.models import gmm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_case(x: np.ndarray, covariance: str, k: int, iters: int, rounds: int) -> dict:
  c = config_lib.load_config(os.path.join(REPO, "experiments", "gmm_digits.py"))
  c.model.update(num_components=k, covariance=covariance)
  fam = gmm.make(c, spec_lib.example((x.shape[1],)))
  xj, w = jnp.asarray(x), jnp.ones(len(x))
  params0, _ = fam.init(jax.random.key(0), {"x": xj})

  def run(p):
    def body(p, _):
      stats = fam.em.e_step(p, {}, {"x": xj}, w)
      p, _ = fam.em.m_step(p, {}, stats)
      return p, stats["loglik"] / stats["count"]
    return jax.lax.scan(body, p, None, length=iters)
  t0 = time.perf_counter()
  compiled = jax.jit(run).lower(params0).compile()
  compile_s = time.perf_counter() - t0

  def ours():
    t = time.perf_counter()
    p, lls = compiled(params0)
    jax.block_until_ready(lls)
    return (time.perf_counter() - t) * 1e3 / iters, float(lls[-1])

  def theirs():
    g = gmm.to_sklearn(params0, covariance)
    t = time.perf_counter()
    for _ in range(iters):
      ll, log_resp = g._e_step(x)   # pylint: disable=protected-access
      g._m_step(x, log_resp)        # pylint: disable=protected-access
    return (time.perf_counter() - t) * 1e3 / iters, float(ll)

  times = {"gen_jax": [], "sklearn": []}
  lls = {}
  for r in range(rounds):
    order = [("gen_jax", ours), ("sklearn", theirs)]
    for name, fn in (order if r % 2 == 0 else order[::-1]):
      ms, ll = fn()
      times[name].append(ms)
      lls[name] = ll
  med = {n: statistics.median(v) for n, v in times.items()}
  return {"covariance": covariance, "k": k, "iters": iters, "compile_s": round(compile_s, 3),
          "ms_per_iter": {n: round(v, 3) for n, v in med.items()},
          "sklearn/gen_jax": round(med["sklearn"] / med["gen_jax"], 2),
          # gen_jax logs the E-step's log-likelihood: that of the parameters before the
          # last M-step, as sklearn's _e_step does.
          "final_loglik": lls}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--json", default="")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  x = sources.load("digits", "train").x.reshape(1500, -1).astype(np.float64) / 255.0
  load = os.getloadavg()[0]
  print(f"jax {jax.__version__} {jax.default_backend()}; load average {load:.2f} "
        f"(run alone for meaningful ratios)")
  cases = [one_case(x, cov, k, args.iters, args.rounds)
           for cov, k in (("full", 10), ("diag", 10), ("diag", 20))]
  print("\n| covariance | K | gen_jax ms/iter | sklearn ms/iter | sklearn / gen_jax | compile s "
        "| final log-lik (gen_jax, sklearn) |")
  print("|---|---:|---:|---:|---:|---:|---|")
  for r in cases:
    m = r["ms_per_iter"]
    print(f"| {r['covariance']} | {r['k']} | {m['gen_jax']:.2f} | {m['sklearn']:.2f} | "
          f"{r['sklearn/gen_jax']:.2f}x | {r['compile_s']:.2f} | "
          f"{r['final_loglik']['gen_jax']:.6f}, {r['final_loglik']['sklearn']:.6f} |")
  common.write_json(args.json, common.fields(
      "gmm_em_digits", rounds=args.rounds, iters=args.iters, cases=cases))

if __name__ == "__main__":
  main()
