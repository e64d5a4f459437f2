"""The package's public surface."""

import subprocess
import sys

import grukit


def test_public_names_resolve() -> None:
    for name in grukit.__all__:
        assert getattr(grukit, name) is not None
    assert issubclass(grukit.GRU, grukit.RNNBase)


def test_scratch_imports_without_torch() -> None:
    """grukit.scratch is NumPy only: importing it must not pull torch in."""
    code = "import sys, grukit.scratch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
