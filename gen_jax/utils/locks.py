"""An exclusive lock between processes of one machine, on a file (POSIX flock).

Used where two processes could otherwise do the same work into one folder at
once: e.g. two test workers or two runs training the same missing prerequisite
classifier. Where `fcntl` does not exist (Windows), `held` does not lock.
"""
import contextlib
import os

try:
  import fcntl
except ImportError:   # pragma: no cover - not POSIX
  fcntl = None


@contextlib.contextmanager
def held(path: str):
  """Holds an exclusive lock on `path` (made, with its folder, when missing) inside the block.

  Blocks until no other process holds it. The lock goes with the process: a
  holder that crashes releases it.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a", encoding="utf-8") as f:
    if fcntl is not None:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
      yield
    finally:
      if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
