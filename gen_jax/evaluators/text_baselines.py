"""Trivial baselines of a text split, so every language model's loss has a floor to beat.

type "text_baselines": exact cross-entropies, in nats per token, of the eval
split's next-token predictions (every token after the first) under models
fitted by counting on the training split (`gen_jax.data.text.ngram_baselines`):
  uniform   ln V
  unigram   add-one smoothed character frequencies
  bigram    add-one smoothed P(next | previous)
Config keys: split (default data.eval_split). They depend on the data only,
not on the checkpoint; a model that does not beat the bigram has learned
little beyond character pairs.
"""
from gen_jax import errors
from gen_jax.data import text


def evaluate(ctx, name: str, ec) -> dict:
  train, split = ctx.source(ctx.data.train_split), ctx.source(ec.get("split", ""))
  if not split.stream:
    raise errors.ConfigError("evaluator 'text_baselines' needs a text dataset")
  v = split.spec["tokens"].cardinality
  out = text.ngram_baselines(train.arrays["tokens"], split.arrays["tokens"], v)
  n = len(split.arrays["tokens"]) - 1
  where = (f"exact, over the {n} next-token predictions of "
           f"{ctx.data.name}:{ec.get('split', '') or ctx.data.eval_split}, counts from "
           f"{ctx.data.name}:{ctx.data.train_split}")
  how = {"uniform": f"ln {v}", "unigram": "add-one unigram", "bigram": "add-one bigram"}
  return {f"{name}/{k}": (float(val), f"nats per token, {how[k]}; {where}")
          for k, val in out.items()}
