"""The host allocator keeps freed memory mapped after retain_freed_memory() (glibc only)."""
import os
import platform
import subprocess
import sys

import pytest

from gen_jax import errors
from gen_jax.utils import host_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates, touches and frees 64 MiB, then prints the resident memory it kept (MiB).
PROBE = """
import ctypes, os, sys
from gen_jax.utils import host_memory
print(host_memory.retain_freed_memory())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
p = libc.malloc(ctypes.c_size_t(64 << 20))
ctypes.memset(p, 1, 64 << 20)
libc.free(ctypes.c_void_p(p))
print((rss() - before) / 2**20)
"""


def _probe(mode: str) -> tuple[str, float]:
  env = {**os.environ, host_memory.ENV: mode}
  out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                       text=True, check=True).stdout.split()
  return out[0], float(out[1])


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's (Linux)")
def test_freed_blocks_stay_resident_only_with_the_settings():
  applied, kept = _probe("retain")
  assert applied == "True" and kept > 60        # the 64 MiB block is still mapped
  applied, kept = _probe("default")
  assert applied == "False" and kept < 4         # glibc unmapped it on free


def test_unknown_mode_is_a_one_line_error(monkeypatch):
  monkeypatch.setattr(host_memory, "_state", {"applied": None})
  monkeypatch.setenv(host_memory.ENV, "jemalloc")
  with pytest.raises(errors.ConfigError, match="GEN_JAX_HOST_MALLOC='jemalloc'; expected"):
    host_memory.retain_freed_memory()
