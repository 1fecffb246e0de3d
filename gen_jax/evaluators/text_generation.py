"""Text generation of a language model: continuations of prompts, their diversity, its loss.

type "text_generation", for the "gpt" family on character tokens. For each
of `prompts` it draws `num_samples` continuations of `max_new_tokens` tokens
with the KV-cached sampler (the family's own `sample`, with these settings in
place of config.sample; gen_jax.inference.sampling) and reports:
  distinct_1, _2, _3            distinct-n (Li et al. 2016) of the generated
                                tokens only (not the prompts): unique token
                                (character) n-grams / all n-grams, pooled over
                                every continuation of every prompt
  distinct_1_reference, ...     the same for as many windows of as many tokens
                                of real text of the eval split, at seeded
                                random offsets: what the data's own text scores
  nll, nll_sem, tokens_total    the model's cross-entropy on the eval split in
                                nats per token (every next-token prediction of
                                non-overlapping block_size windows, the family's
                                eval_fn, as evaluator "likelihood" computes it)
  samples_file                  <workdir>/samples/<name>_<step>.txt: each
                                prompt and continuation, decoded
Config keys: prompts (tuple of strings; default (sample.prompt,)), num_samples
(per prompt, default 10), max_new_tokens (default sample.num_tokens),
temperature (0 = greedy), top_k (0 = off), top_p (1 = off) (defaults: those
of config.sample), split (default data.eval_split), batch_size (cross-entropy
batch, default 32), num_examples (windows for the cross-entropy, 0 = all).
A prompt with characters outside the vocabulary, or a prompt plus
max_new_tokens longer than model.block_size, is a one-line error.
"""
import os

import jax
import ml_collections
import numpy as np

from gen_jax import errors, parallel, registry
from gen_jax.data import variants
from gen_jax.evaluators import likelihood
from gen_jax.metrics import text_diversity
from gen_jax.utils import sample_files

NGRAMS = (1, 2, 3)
FAMILIES = ("gpt",)


def settings(ec, config) -> dict:
  """The generation settings: ec's keys, defaulting to config.sample's."""
  s = config.sample
  prompts = ec.get("prompts", (s.prompt,))
  prompts = (prompts,) if isinstance(prompts, str) else tuple(prompts)
  return dict(prompts=prompts, num_samples=ec.get("num_samples", 10),
              max_new_tokens=ec.get("max_new_tokens", s.num_tokens),
              temperature=ec.get("temperature", s.temperature), top_k=ec.get("top_k", s.top_k),
              top_p=ec.get("top_p", s.top_p))


def check(name: str, ec, config) -> None:
  """Fails before training on keys this evaluator would trip over only at the end."""
  if config.family not in FAMILIES:
    raise errors.ConfigError(f"evaluator 'text_generation' needs family 'gpt' (got "
                             f"{config.family!r})")
  g = settings(ec, config)
  if not g["prompts"] or not all(isinstance(p, str) for p in g["prompts"]):
    raise errors.ConfigError(f"evals.{name}.prompts must be a non-empty tuple of strings (got "
                             f"{g['prompts']!r})")
  for key, low in (("num_samples", 1), ("max_new_tokens", max(NGRAMS)), ("top_k", 0)):
    value = g[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise errors.ConfigError(f"evals.{name}.{key} must be an integer >= {low} (got {value!r})")
  if g["temperature"] < 0:
    raise errors.ConfigError(f"evals.{name}.temperature must be >= 0 (got {g['temperature']})")
  block = config.model.block_size
  for i, p in enumerate(g["prompts"]):
    if max(len(p), 1) + g["max_new_tokens"] > block:
      raise errors.ConfigError(
          f"evals.{name}.prompts[{i}] ({max(len(p), 1)} tokens) + max_new_tokens "
          f"({g['max_new_tokens']}) exceeds model.block_size={block}; lower "
          f"evals.{name}.max_new_tokens")


def _check_vocab(name: str, prompts: tuple, vocab: tuple) -> None:
  known = set(vocab)
  for i, p in enumerate(prompts):
    bad = sorted(set(p) - known)
    if bad:
      raise errors.ConfigError(
          f"evals.{name}.prompts[{i}]={p!r} has characters outside the training vocabulary: "
          f"{bad!r}; use only characters of the training text ({len(vocab)} symbols)")


def _family_for(ctx, prompt: str, g: dict):
  """The family rebuilt with config.sample set to this prompt and these settings."""
  config = ctx.config.copy_and_resolve_references()
  with config.unlocked():
    config.sample = ml_collections.ConfigDict(dict(
        prompt=prompt, num_tokens=g["max_new_tokens"], temperature=float(g["temperature"]),
        top_k=g["top_k"], top_p=float(g["top_p"])))
  spec = variants.model_spec(ctx.data.variant, ctx.spec)
  return registry.family_module(config.family).make(config, spec)


def evaluate(ctx, name: str, ec) -> dict:
  check(name, ec, ctx.config)
  g = settings(ec, ctx.config)
  field = ctx.spec.get(ctx.family.sample_field)
  if field is None or field.modality != "tokens" or not field.vocab:
    raise errors.ConfigError("evaluator 'text_generation' needs character tokens (a text "
                             "dataset with data.block_size)")
  vocab, length, n = field.vocab, g["max_new_tokens"], g["num_samples"]
  _check_vocab(name, g["prompts"], vocab)

  # Continuations: one jitted KV-cached sampler call per prompt, n sequences each.
  prompt_ids, continuations = [], []
  for i, prompt in enumerate(g["prompts"]):
    family = _family_for(ctx, prompt, g)
    out = jax.jit(family.sample, static_argnums=3)(ctx.params, ctx.state, ctx.key(name, i), n)
    out = np.asarray(parallel.to_host(out))
    p = out.shape[1] - length
    prompt_ids.append(out[0, :p])
    continuations.append(out[:, p:])
  generated = np.concatenate(continuations)                       # i32[P * n, length]

  split_name = ec.get("split", "") or ctx.data.eval_split
  source = ctx.source(split_name)
  if not source.stream:
    raise errors.ConfigError("evaluator 'text_generation' needs a text dataset")
  reference = text_diversity.reference_windows(source.arrays["tokens"], len(generated), length,
                                               parallel.hash_str(name))
  how = (f"temperature {g['temperature']}, top_k {g['top_k']}, top_p {g['top_p']}; "
         f"{len(g['prompts'])} prompt(s) x {n} samples x {length} new tokens")
  where = f"{ctx.data.name}:{split_name}"
  out = {}
  for k in NGRAMS:
    out[f"{name}/distinct_{k}"] = (
        text_diversity.distinct_n(generated, k),
        f"unique / total token {k}-grams of the generated tokens (Li et al. 2016), pooled; {how}")
    out[f"{name}/distinct_{k}_reference"] = (
        text_diversity.distinct_n(reference, k),
        f"the same for {len(reference)} windows of {length} tokens of {where} at seeded random "
        f"offsets")

  ce = ml_collections.ConfigDict(dict(type="likelihood", split=split_name,
                                      batch_size=ec.get("batch_size", 32),
                                      num_examples=ec.get("num_examples", 0)))
  likelihood.check(name, ce, ctx.config)
  out.update(likelihood.mean_over_split(ctx, name, ce))

  path = ctx.path(name, "txt")
  if parallel.is_main():
    blocks = []
    rows = zip(g["prompts"], prompt_ids, continuations, strict=True)
    for i, (prompt, ids, cont) in enumerate(rows):
      shown = sample_files.decode(ids, vocab)     # "" is fed as the first vocabulary symbol
      fed = "" if shown == prompt else f" (fed as {shown!r})"
      for j, c in enumerate(cont):
        blocks.append(f"# prompt {i} {prompt!r}{fed}, sample {j}\n"
                      f"{shown}{sample_files.decode(c, vocab)}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write(f"# step {ctx.step}; {how}{sample_files.RULE}")
      f.write(sample_files.RULE.join(blocks) + "\n")
    if ctx.writer is not None:
      ctx.writer.write_text(ctx.step, name, blocks[0])
  out[f"{name}/samples_file"] = (path, f"the {len(generated)} continuations, each after its "
                                       f"prompt, as text")
  return out
