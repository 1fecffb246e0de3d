"""Host allocator settings for XLA:CPU: keep freed memory for the next call instead of unmapping it.

XLA:CPU allocates each call's outputs and one packed temporary buffer with the
C allocator. Under glibc's defaults, blocks above the mmap threshold (128 KiB,
adapting up to 32 MiB) are fresh mappings and freed memory at the top of the
heap is returned to the OS, so every call of a jitted step faults in and
zeroes its temporaries again: for the char GPT's train step on 2 CPU cores
that was ~10 ms of a ~41 ms call (a lax.scan of 10 steps, which reuses its
buffers, ran at ~31 ms per step; with these settings a single call does too).

`retain_freed_memory()` raises glibc's mmap and trim thresholds to their
largest values, so blocks below 2 GiB come from the heap and stay mapped
after `free`. The cost: the process's resident memory stays at its peak.
Set GEN_JAX_HOST_MALLOC=default to keep glibc's defaults. Elsewhere (macOS,
musl, an allocator preloaded with LD_PRELOAD) it does nothing.
"""
import ctypes
import ctypes.util
import os
import platform

from gen_jax import errors

ENV = "GEN_JAX_HOST_MALLOC"
# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST = 2**31 - 1           # mallopt takes an int

_state = {"applied": None}


def retain_freed_memory() -> bool:
  """Sets glibc's mmap and trim thresholds to 2^31 - 1 bytes once per process.

  Returns whether the settings are in effect (False off glibc, when the
  environment variable GEN_JAX_HOST_MALLOC=default asks for glibc's defaults,
  or when mallopt refuses).
  """
  if _state["applied"] is not None:
    return _state["applied"]
  mode = os.environ.get(ENV, "retain")
  if mode not in ("retain", "default"):
    raise errors.ConfigError(f"{ENV}={mode!r}; expected 'retain' (the default) or 'default'")
  applied = False
  if mode == "retain" and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied = all(libc.mallopt(ctypes.c_int(p), ctypes.c_int(LARGEST)) == 1
                  for p in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))
  _state["applied"] = applied
  return applied
