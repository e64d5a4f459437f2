"""The package's public surface."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import grukit

ROOT = Path(grukit.__file__).resolve().parents[2]  # the checkout these tests import


def test_public_names_resolve() -> None:
    for name in grukit.__all__:
        assert getattr(grukit, name) is not None
    assert issubclass(grukit.GRU, grukit.RNNBase)


def test_scratch_imports_without_torch() -> None:
    """grukit.scratch is NumPy only: importing it must not pull torch in."""
    code = "import sys, grukit.scratch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_is_declared_once() -> None:
    """pyproject takes the version from grukit.__version__ (setuptools' attr), and the
    installed metadata agrees with it."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "grukit.__version__"
    try:
        installed = importlib.metadata.version("grukit")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("grukit is not installed (only on PYTHONPATH): no metadata to compare")
    assert installed == grukit.__version__


def test_license_file_is_mit_as_pyproject_says() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the grukit authors" in text
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
