"""Exact inference speed: batched variable elimination (gen_jax) vs pgmpy, on bnlearn networks.

Command:  BNLEARN_DIR=<folder of <name>.bif[.gz]> python benchmarks/bench_bn.py \\
            [--dir FOLDER] [--networks asia,child,...] [--batch 1000] [--rounds 5] \\
            [--pgmpy-queries 50] [--no-pgmpy] [--json out.json]
          (pgmpy is optional: pip install pgmpy==1.1.2; its rows are skipped without it)

The query "2_leaves" is pgmpy's usual timing query: a single marginal
P(root | two leaves), root = the first root that is not one of the first two
leaves, in BIF order; "all_leaves" observes every leaf (the bn_queries
evaluator's query, a harder elimination). The evidence values are the leaves'
states in cases sampled from the network (so every evidence set is possible).
Per network and query it reports:
  plan_ms          host time to prune, order (min-fill) and size the plan
  max_entries / bytes_per_query   the largest VE table for one evidence set
                   (estimated before anything runs) and its bytes in float32
  compile_s        first batched call minus a steady one (trace + XLA compile)
  batched_qps      queries per second of one jitted call on --batch evidence
                   sets (median over --rounds calls)
  single_ms        one evidence set per jitted call (latency, median)
  pgmpy_ms         pgmpy VariableElimination.query per evidence set (mean over
                   --pgmpy-queries), and max |P_gen_jax - P_pgmpy| on those
The networks are read from --dir, else $BNLEARN_DIR, else pgmpy's bundled copies;
asia is also embedded.

Reference (pgmpy 1.1.2 variable elimination, measured on a 2-core CPU): asia 1.7 ms, child 0.8,
insurance 0.9, alarm 4.4, hailfinder 1.4, win95pts 0.7 ms per query.
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import bif, bn_data
from gen_jax.inference import variable_elimination as ve

NETWORKS = ("asia", "child", "insurance", "alarm", "hailfinder", "win95pts")


def _query(g: ve.Graph, kind: str) -> tuple:
  """(root, leaves): P(root | two leaves) ("2_leaves") or P(root | every leaf) ("all_leaves")."""
  leaves = g.leaves()[:2] if kind == "2_leaves" else g.leaves()
  root = next(v for v in g.roots() if v not in leaves)
  return root, leaves


def _timed(fn, *args) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0


def bench_network(name: str, kind: str, batch: int, rounds: int, pgmpy_queries: int,
                  use_pgmpy: bool) -> dict:
  net = bif.find(name)
  g = net.graph
  root, leaves = _query(g, kind)
  t0 = time.perf_counter()
  plan = ve.make_plan(g, (root,), leaves, batch=batch)
  plan_ms = 1e3 * (time.perf_counter() - t0)
  cases = bn_data.forward_sample(net, batch, np.random.default_rng(0))
  values = jnp.asarray(cases[:, list(leaves)])
  tables = [jnp.asarray(t) for t in net.log_cpts(np.float32)]
  fn = jax.jit(lambda t, v: ve.posterior(plan, t, v))
  first = _timed(fn, tables, values)
  steady = [_timed(fn, tables, values) for _ in range(rounds)]
  one = values[:1]
  _timed(fn, tables, one)
  single = [_timed(fn, tables, one) for _ in range(max(rounds, 20))]
  probs, log_z = fn(tables, values)
  ve.check_possible(plan, log_z, np.asarray(values))
  row = dict(
      network=name, kind=kind, variables=g.num_variables,
      edges=sum(len(p) for p in g.parents),
      query=f"P({g.names[root]} | {', '.join(g.names[v] for v in leaves)})",
      pruned_factors=len(plan.factors), eliminated=len(plan.order),
      plan_ms=plan_ms, max_entries=plan.max_entries, bytes_per_query=plan.bytes(1, 4),
      bytes_per_batch=plan.bytes(batch, 4),
      compile_s=max(first - statistics.median(steady), 0.0),
      batched_ms_per_call=1e3 * statistics.median(steady),
      batched_qps=batch / statistics.median(steady),
      single_ms=1e3 * statistics.median(single))
  if use_pgmpy:
    row.update(_pgmpy(net, root, leaves, np.asarray(values[:pgmpy_queries]),
                      np.asarray(probs[:pgmpy_queries])))
  return row


def _pgmpy(net, root, leaves, values, ours) -> dict:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pgmpy.inference import VariableElimination  # pylint: disable=g-import-not-at-top
    from pgmpy.readwrite import BIFReader  # pylint: disable=g-import-not-at-top
    model = BIFReader(string=bif.to_bif(net)).get_model()
    inference = VariableElimination(model)
    g = net.graph
    q = g.names[root]
    times, diff = [], 0.0
    for row, p in zip(values, ours, strict=True):
      ev = {g.names[v]: g.states[v][int(s)] for v, s in zip(leaves, row, strict=True)}
      t0 = time.perf_counter()
      r = inference.query([q], evidence=ev, show_progress=False)
      times.append(time.perf_counter() - t0)
      theirs = np.array([r.values[r.state_names[q].index(s)] for s in g.states[root]])
      diff = max(diff, float(np.abs(theirs - p).max()))
  return dict(pgmpy_ms=1e3 * float(np.mean(times)), pgmpy_qps=1.0 / float(np.mean(times)),
              pgmpy_queries=len(values), max_abs_diff_vs_pgmpy=diff)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dir", default="", help=f"folder of <name>.bif[.gz] (else ${bif.ENV_DIR})")
  parser.add_argument("--networks", default=",".join(NETWORKS))
  parser.add_argument("--kinds", default="2_leaves,all_leaves",
                      help="2_leaves: P(root | 2 leaves); all_leaves: P(root | every leaf)")
  parser.add_argument("--batch", type=int, default=1000, help="evidence sets per batched call")
  parser.add_argument("--rounds", type=int, default=5, help="timed calls; the median is reported")
  parser.add_argument("--pgmpy-queries", type=int, default=50)
  parser.add_argument("--no-pgmpy", action="store_true")
  parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
  parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. CPU shared)")
  args = parser.parse_args(argv)
  if args.dir:
    os.environ[bif.ENV_DIR] = args.dir
  use_pgmpy = not args.no_pgmpy
  pgmpy_version = ""
  if use_pgmpy:
    try:
      import importlib.metadata  # pylint: disable=g-import-not-at-top
      pgmpy_version = importlib.metadata.version("pgmpy")
    except importlib.metadata.PackageNotFoundError:
      use_pgmpy = False
      print("pgmpy not installed: its rows are skipped", file=sys.stderr)
  rows = []
  for kind, name in [(k, n) for k in args.kinds.split(",") for n in args.networks.split(",")]:
    r = bench_network(name, kind, args.batch, args.rounds, args.pgmpy_queries, use_pgmpy)
    rows.append(r)
    pg = (f" | pgmpy {r['pgmpy_ms']:.2f} ms/query, max diff {r['max_abs_diff_vs_pgmpy']:.1e}"
          if "pgmpy_ms" in r else "")
    print(f"{name:11s} {kind:10s} {r['query'][:40]:40s} plan {r['plan_ms']:6.1f} ms | "
          f"largest table {r['max_entries']:>6,} entries ({r['bytes_per_query']:,} B/query) | "
          f"compile {r['compile_s']:.2f} s | batched {r['batched_qps']:,.0f} q/s | single "
          f"{r['single_ms']:.3f} ms{pg}", flush=True)
  report = common.fields(
      "bn_variable_elimination",
      query="P(root | 2 leaves) and P(root | every leaf), evidence from cases sampled from "
            "the network",
      pgmpy_version=pgmpy_version, batch=args.batch, rounds=args.rounds, note=args.note,
      results=rows)
  common.write_json(args.json, report)
  return report


if __name__ == "__main__":
  main()
