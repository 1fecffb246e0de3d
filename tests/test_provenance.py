"""Run records name the hardware a number came from, including CPU pinning."""
from gen_jax import provenance


def test_cpu_cores_reports_pinning(monkeypatch):
  monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
  monkeypatch.setattr(provenance.os, "sched_getaffinity", lambda pid: {1}, raising=False)
  assert provenance.cpu_cores() == "1 of 2 cores"
  monkeypatch.setattr(provenance.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
  assert provenance.cpu_cores() == "2 cores"


def test_hardware_names_platform_and_device_count():
  hw = provenance.hardware()
  assert hw.startswith("1 x cpu (") and hw.endswith("cores)")
