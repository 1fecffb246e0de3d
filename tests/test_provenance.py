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


def test_a_dirty_commit_lists_the_changed_files(tmp_path, monkeypatch):
  import subprocess  # pylint: disable=g-import-not-at-top
  for cmd in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
    subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
  (tmp_path / "a.py").write_text("1\n")
  (tmp_path / "b.md").write_text("1\n")
  subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
  subprocess.run(["git", "commit", "-qm", "x"], cwd=tmp_path, check=True)
  monkeypatch.setattr(provenance, "REPO", str(tmp_path))
  assert not provenance.git_commit().endswith("+dirty") and provenance.changed_files() == []
  (tmp_path / "b.md").write_text("2\n")
  (tmp_path / "new.py").write_text("untracked\n")
  assert provenance.git_commit().endswith("+dirty")
  assert provenance.changed_files() == ["b.md"]


def test_cpu_model_names_the_widest_vector_units(tmp_path, monkeypatch):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f amx_tile\n"
                  "processor\t: 1\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f amx_tile\n")
  real_open = open
  monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
      info if path == "/proc/cpuinfo" else path, *a, **k))
  assert provenance.cpu_model() == "Some Xeon (AVX-512, AMX)"
  info.write_text("model name\t: Old Core\nflags\t\t: fpu sse4_2 avx2\n")
  assert provenance.cpu_model() == "Old Core (AVX2)"
  info.write_text("model name\t: Tiny\nflags\t\t: fpu\n")
  assert provenance.cpu_model() == "Tiny"
