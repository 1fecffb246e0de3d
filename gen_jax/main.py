"""Launcher: python -m gen_jax.main --config experiments/<name>.py[:variant] --workdir DIR
[--mode train|eval|sample] [--step N] [--config.key=value ...]

Dispatch only: every piece it calls is importable by tests and notebooks.
Problems with the config, data or workdir are reported as one line.
"""
import argparse
import sys

from gen_jax import errors

MODES = ("train", "eval", "sample")


def parse(argv):
  """Splits argv into launcher flags and `--config.a.b=value` overrides."""
  parser = argparse.ArgumentParser(
      prog="python -m gen_jax.main", description=__doc__.split("\n\n")[0],
      allow_abbrev=False)
  parser.add_argument("--config", required=True,
                      help="experiments/<name>.py[:variant]")
  parser.add_argument("--workdir", required=True,
                      help="checkpoints, metrics, samples; rerun to resume")
  parser.add_argument("--mode", default="train", help="|".join(MODES))
  parser.add_argument("--step", type=int, default=None,
                      help="eval/sample: checkpoint step (default: latest)")
  args, rest = parser.parse_known_args(argv)
  overrides = []
  for item in rest:
    if not item.startswith("--config."):
      raise errors.ConfigError(
          f"unknown argument {item!r}; expected --config.<key>=<value> overrides")
    overrides.append(item[len("--config."):])
  if args.mode not in MODES:
    raise errors.ConfigError(errors.choices("mode", args.mode, MODES))
  return args, overrides


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  try:
    args, overrides = parse(argv)
    from gen_jax import config_lib, parallel  # pylint: disable=g-import-not-at-top
    config = config_lib.load_config(args.config, overrides)
    parallel.initialize(config.distributed)
    from gen_jax.trainers import loop  # pylint: disable=g-import-not-at-top
    if config.application.type:
      if args.mode != "train":
        raise errors.ConfigError(
            f"application {config.application.type!r} runs with --mode train only (rerun "
            f"it to resume; finished parts are reused)")
      from gen_jax import applications  # pylint: disable=g-import-not-at-top
      applications.run(config, args.workdir)
    elif args.mode == "train":
      loop.train(config, args.workdir)
    elif args.mode == "eval":
      loop.evaluate(config, args.workdir, args.step)
    else:
      loop.sample(config, args.workdir, args.step)
  except errors.GenJaxError as e:
    print(f"error: {' '.join(str(e).splitlines())}", file=sys.stderr, flush=True)
    return 2
  except OSError as e:   # the file system refused (full disk, permissions): no traceback
    print(f"error: {e}; check the workdir and data paths", file=sys.stderr, flush=True)
    return 2
  except KeyboardInterrupt:   # Ctrl-C or SIGTERM; train() has saved what it could
    print("interrupted", file=sys.stderr, flush=True)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
