"""grukit.scratch depends on NumPy and the standard library only.

Every module of the package is parsed (not imported) and every import statement in it,
at any depth, must name numpy, a standard-library module (sys.stdlib_module_names) or
grukit.scratch itself (a relative import of level 1).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import grukit.scratch

PACKAGE = Path(grukit.scratch.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


def allowed(top: str) -> bool:
    return top == "numpy" or top in sys.stdlib_module_names


def offending_imports(source: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if not allowed(a.name.split(".")[0])]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:
                continue  # from . import x / from .gru import y: grukit.scratch itself
            name = "." * node.level + (node.module or "")
            if node.level > 1 or not allowed(name.split(".")[0]):
                bad.append(name)
    return bad


def test_package_has_the_expected_modules():
    names = {p.stem for p in MODULES}
    assert {"__init__", "rnn", "gru", "lstm", "gradcheck", "demo"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_numpy_and_stdlib(path):
    assert offending_imports(path.read_text(encoding="utf-8")) == []


def test_the_check_catches_forbidden_imports():
    source = "import torch\nfrom grukit import GRU\nfrom .. import layers\nimport numpy.linalg\n"
    source += "def f():\n    import pandas as pd\n    from os import path\n"
    assert offending_imports(source) == ["torch", "grukit", "..", "pandas"]


def test_grukit_does_not_import_scratch_eagerly():
    import subprocess

    code = "import sys, grukit; print('grukit.scratch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
