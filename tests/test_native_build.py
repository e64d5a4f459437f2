"""The native kernel's build: its cache key changes with everything that makes a build
differ, loading prints nothing, and GRUKIT_REQUIRE_NATIVE=1 turns an unbuildable kernel
into a failed test run (without it, the native tests skip, naming why)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch

import grukit
from grukit.backends.native import build

ROOT = Path(grukit.__file__).resolve().parents[2]  # the checkout these tests import
NATIVE = Path(build.__file__).parent


def key(flags: list[str] | None = None, folder: Path | None = None) -> str:
    return build.build_key(build.build_inputs(flags or build.compile_flags(), folder))


def copy_sources(to: Path) -> Path:
    to.mkdir()
    for name in build.SOURCES + build.HEADERS:
        shutil.copy(NATIVE / name, to / name)
    return to


def test_build_key_is_stable() -> None:
    assert key() == key() and len(key()) == 12


def test_build_key_follows_the_sources_folder_and_contents(tmp_path: Path) -> None:
    a, b = copy_sources(tmp_path / "a"), copy_sources(tmp_path / "b")
    keys = {key(folder=NATIVE), key(folder=a), key(folder=b)}
    assert len(keys) == 3  # same contents, other checkouts: builds never shared
    for name in build.SOURCES + build.HEADERS:
        before = key(folder=a)
        (a / name).write_bytes((a / name).read_bytes() + b"\n// edited\n")
        assert key(folder=a) != before, name


def test_build_key_follows_cpu_capability_and_sanitizer(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {}
    for cpu in ("avx512", "avx2", "plain"):
        flags = {"avx512": build.AVX512, "avx2": {"avx2", "fma"}, "plain": set()}[cpu]
        monkeypatch.setattr(build, "cpu_flags", lambda flags=flags: set(flags))
        keys[cpu] = key()
        monkeypatch.setenv("GRUKIT_SANITIZE", "1")
        keys[cpu + "+asan"] = key()
        monkeypatch.delenv("GRUKIT_SANITIZE")
    assert len(set(keys.values())) == 6, keys


def test_build_key_follows_compiler_torch_and_python(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = key()
    other_cxx = tmp_path / "other-c++"
    other_cxx.write_text("#!/bin/sh\n")
    other_cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(other_cxx))
    assert key() != base
    monkeypatch.delenv("CXX")
    assert key() == base
    monkeypatch.setattr(torch, "__version__", torch.__version__ + ".other")
    assert key() != base
    monkeypatch.undo()
    real = sysconfig.get_config_var
    monkeypatch.setattr(
        sysconfig, "get_config_var", lambda n: "cpython-399-x" if n == "SOABI" else real(n)
    )
    assert key() != base


def test_the_loaded_kernel_lives_under_its_key(native_kernel: ModuleType) -> None:
    assert Path(native_kernel.__file__).parent == build.cache_dir() / key()


def test_the_kernel_is_built_for_the_cpu_s_capability(native_kernel: ModuleType) -> None:
    """gru.cpp's at::vec width is what /proc/cpuinfo offers: AVX-512, else AVX2 + FMA
    (unless GRUKIT_ISA forces another)."""
    cpu = build.cpu_flags()
    want = "AVX512" if build.AVX512 <= cpu else "AVX2" if {"avx2", "fma"} <= cpu else "DEFAULT"
    if os.environ.get("GRUKIT_ISA", "auto").strip().lower() not in ("", "auto"):
        want = {"avx512": "AVX512", "avx2": "AVX2", "generic": "DEFAULT"}[build.isa()]
    assert native_kernel.cpu_capability() == want


@pytest.mark.parametrize(
    ("cpu", "asked", "isa"),
    [
        (build.AVX512 | {"avx2"}, "", "avx512"),
        (build.AVX512 | {"avx2"}, "auto", "avx512"),
        (build.AVX512 | {"avx2"}, "AVX2", "avx2"),
        (build.AVX512 | {"avx2"}, "generic", "generic"),
        ({"avx2", "fma"}, "", "avx2"),
        ({"avx2", "fma"}, "generic", "generic"),
        ({"neon", "asimd"}, "", "generic"),
        (set(), " Generic ", "generic"),
    ],
)
def test_grukit_isa_forces_the_build(
    monkeypatch: pytest.MonkeyPatch, cpu: set[str], asked: str, isa: str
) -> None:
    """GRUKIT_ISA picks the build's instruction set (case and spaces aside); each its own
    build key, and only the chosen set's macros and flags in the compile flags."""
    monkeypatch.setattr(build, "cpu_flags", lambda: set(cpu))
    monkeypatch.setenv("GRUKIT_ISA", asked)
    assert build.isa() == isa
    flags = build.compile_flags()
    macro = {"avx512": "-DCPU_CAPABILITY_AVX512", "avx2": "-DCPU_CAPABILITY_AVX2"}.get(isa)
    assert [f for f in flags if f.startswith("-DCPU_CAPABILITY_")] == ([macro] if macro else [])
    assert ("-mavx2" in flags) == (isa != "generic")
    assert ("-mavx512f" in flags) == (isa == "avx512")


@pytest.mark.parametrize(
    ("cpu", "asked", "message"),
    [
        ({"avx2", "fma"}, "avx512", "avx512 needs the CPU flags"),
        (set(), "avx2", "this CPU lacks ['avx2', 'fma'] (its best is generic)"),
        ({"avx2", "fma"}, "sse2", "one of ['avx512', 'avx2', 'generic', 'auto'], got 'sse2'"),
    ],
)  # fmt: skip
def test_grukit_isa_refuses_what_the_cpu_lacks(
    monkeypatch: pytest.MonkeyPatch, cpu: set[str], asked: str, message: str
) -> None:
    """An ISA the CPU lacks (the kernel would die on its first instruction) or an unknown
    name: ValueError naming it; load() turns that into the unavailable-kernel warning."""
    monkeypatch.setattr(build, "cpu_flags", lambda: set(cpu))
    monkeypatch.setenv("GRUKIT_ISA", asked)
    with pytest.raises(ValueError, match=re.escape(message)):
        build.compile_flags()
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setattr(build, "_failure_log", None)
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        assert build.load() is None
    assert message in (build.failure() or "")


def test_the_generic_build_matches_the_reference(tmp_path: Path) -> None:
    """The portable build (GRUKIT_ISA=generic: at::vec without a CPU capability, NEON's
    code path on ARM64, scalar here) compiles and passes the native kernel's exactness
    tests against the reference backend (float64, outputs and gradients, 1e-10; float32
    against nn.GRU), in a fresh process with its own cache."""
    env = {**os.environ, "GRUKIT_ISA": "generic", "GRUKIT_CACHE": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["GRUKIT_REQUIRE_NATIVE"] = "1"
    tests = [
        "tests/test_native_build.py::test_the_kernel_is_built_for_the_cpu_s_capability",
        "tests/test_backend_native.py",
    ]
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]


def run_pytest(tmp_path: Path, *, require: bool) -> subprocess.CompletedProcess[str]:
    """tests/test_backend_native.py (one test) in a fresh pytest without a C++ compiler."""
    env = {**os.environ, "CXX": str(tmp_path / "no-such-c++"), "GRUKIT_CACHE": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("GRUKIT_REQUIRE_NATIVE", None)
    if require:
        env["GRUKIT_REQUIRE_NATIVE"] = "1"
    test = "tests/test_backend_native.py::test_native_matches_torch_gru_float32"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_without_a_compiler_native_tests_skip_naming_why(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, require=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "1 skipped" in out.stdout
    assert "no native kernel: no C++ compiler found" in out.stdout


def test_require_native_fails_the_run_naming_the_failure(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, require=True)
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, out.stdout[-2000:]
    text = out.stdout + out.stderr
    assert "GRUKIT_REQUIRE_NATIVE=1, but the native kernel is unavailable" in text
    assert "no C++ compiler found" in text
    assert "passed" not in out.stdout and "skipped" not in out.stdout


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, object]]:
    """build.load() as in a new process with an empty cache and a compiler, with
    cpp_extension.load replaced by a recorder (no compile); yields its calls' arguments."""
    from torch.utils import cpp_extension

    calls: list[dict[str, object]] = []

    def fake_load(**kw: object) -> ModuleType:
        calls.append(kw)
        return ModuleType(str(kw["name"]))

    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setattr(build, "_failure_log", None)
    monkeypatch.setattr(build, "compiler", lambda: "/usr/bin/c++")
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setenv("GRUKIT_CACHE", str(tmp_path))
    return calls


def test_a_build_prints_nothing_and_logs_on_grukit_native(
    fresh_build: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="grukit.native"):
        ext = build.load()
    assert ext is not None and len(fresh_build) == 1
    assert fresh_build[0]["verbose"] is False  # torch's own build log stays quiet too
    assert fresh_build[0]["build_directory"] == str(build.cache_dir() / key())
    assert capsys.readouterr() == ("", "")
    messages = [r.getMessage() for r in caplog.records if r.name == "grukit.native"]
    assert messages[0].startswith("compiling the native CPU kernel into ")
    assert messages[1].startswith("native CPU kernel ready")


def test_a_failed_build_warns_once_and_keeps_the_compiler_output(
    fresh_build: list[dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torch.utils import cpp_extension

    def failing_load(**kw: object) -> ModuleType:
        raise RuntimeError("Error building extension 'x': [1/2] c++ ...\ngru.cpp:1: error: boom")

    monkeypatch.setattr(cpp_extension, "load", failing_load)
    with pytest.warns(RuntimeWarning, match="native CPU kernel is unavailable .build failed"):
        assert build.load() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: no second attempt, no second warning
        assert build.load() is None
    assert build.failure().startswith("build failed: Error building extension 'x'")
    assert "gru.cpp:1: error: boom" in build.failure_log()
    assert capsys.readouterr() == ("", "")
