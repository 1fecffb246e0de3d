"""Run records name the hardware a number came from, including CPU pinning."""
import jax

from gen_jax import provenance


def test_cpu_cores_reports_pinning(monkeypatch):
  monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
  monkeypatch.setattr(provenance.os, "sched_getaffinity", lambda pid: {1}, raising=False)
  assert provenance.cpu_cores() == "1 of 2 cores"
  monkeypatch.setattr(provenance.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
  assert provenance.cpu_cores() == "2 cores"


def test_hardware_names_platform_and_device_count():
  hw = provenance.hardware()
  assert hw.startswith(f"{jax.device_count()} x ")
  if jax.devices()[0].platform == "cpu":
    assert hw.endswith(f"({provenance.cpu_cores()})")
