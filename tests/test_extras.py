"""Dependencies by need: the layers import neither matplotlib nor tqdm, and code that needs
a missing extra says which to install (``grukit._extras.require``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import grukit
from grukit._extras import MissingExtraError, require

SRC = str(Path(grukit.__file__).resolve().parents[1])  # the grukit these tests import
EXTRAS = ("matplotlib", "tqdm")


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter importing this grukit; its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


LIBRARY = "grukit, grukit.layers, grukit.cells, grukit.models, grukit.training, grukit.benchmark"


def test_library_imports_neither_matplotlib_nor_tqdm() -> None:
    """What importing grukit's library adds to sys.modules (torch's own imports aside:
    torch.hub imports tqdm when it is installed) holds neither."""
    code = (
        "import sys, json, torch\n"
        "before = set(sys.modules)\n"
        f"import {LIBRARY}\n"
        "import grukit.benchmark.runner\n"
        "grukit.GRU(3, 4)(torch.zeros(2, 1, 3))\n"
        "new = set(sys.modules) - before\n"
        f"print(json.dumps(sorted(m for m in new if m.split('.')[0] in {EXTRAS!r})))\n"
    )
    assert json.loads(run_python(code)) == []


# Hides modules as if not installed: every finder goes behind one that answers None for
# them (so importlib.util.find_spec says "absent", as torch._dynamo asks, and import raises
# ModuleNotFoundError) and asks the original finders for everything else.
BLOCK = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
        return None
    def invalidate_caches(self):
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()
sys.meta_path[:] = [Hide(list(sys.meta_path))]
"""


def test_plots_and_progress_without_the_cli_extra_name_it(tmp_path: Path) -> None:
    """matplotlib and tqdm made unimportable: the library imports and a GRU runs; plot_curves,
    plot_forecast, progress and run_benchmark raise MissingExtraError saying which extra to
    install; nothing is written."""
    code = BLOCK.format(blocked=EXTRAS) + (
        "import json, torch\n"
        f"import {LIBRARY}\n"
        "assert grukit.GRU(3, 4)(torch.zeros(2, 1, 3))[0].shape == (2, 1, 4)\n"
        "from grukit import training\n"
        "from grukit.benchmark.runner import BenchConfig, QUICK_GRID, run_benchmark\n"
        "calls = {\n"
        f"  'plot_curves': lambda: training.plot_curves({str(tmp_path / 'c.png')!r},"
        " {'a': [1.0]}),\n"
        f"  'plot_forecast': lambda: training.plot_forecast({str(tmp_path / 'f.png')!r},"
        " ([0], [1.0]), None, ([1], [2.0])),\n"
        "  'progress': lambda: training.progress(3, 'x'),\n"
        "  'run_benchmark': lambda: run_benchmark(BenchConfig(grid=QUICK_GRID[:1],"
        " backends=('reference',), threads=1, progress=False)),\n"
        "}\n"
        "out = {}\n"
        "for name, call in calls.items():\n"
        "    try:\n"
        "        call()\n"
        "        out[name] = None\n"
        "    except ModuleNotFoundError as err:\n"
        "        out[name] = [type(err).__name__, str(err)]\n"
        "print(json.dumps(out))\n"
    )
    got = json.loads(run_python(code))
    want_module = {"plot_curves": "matplotlib", "plot_forecast": "matplotlib"}
    for name, result in got.items():
        module = want_module.get(name, "tqdm")
        assert result is not None, f"{name} ran without {module}"
        kind, message = result
        assert kind == "MissingExtraError"
        assert f"{name} needs {module}, which is not installed" in message
        assert "pip install 'grukit[cli]'" in message
    assert sorted(got) == ["plot_curves", "plot_forecast", "progress", "run_benchmark"]
    assert list(tmp_path.iterdir()) == []


def test_require_returns_the_module() -> None:
    assert require("json", "cli", "f") is json


def test_require_names_the_extra_of_a_missing_module() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("grukit_absent_pkg.sub", "cli", "grukit.thing")
    assert str(info.value) == (
        "grukit.thing needs grukit_absent_pkg, which is not installed: pip install 'grukit[cli]'"
    )
    assert isinstance(info.value, ModuleNotFoundError)


def test_require_passes_on_an_installed_module_s_own_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed package that fails to import is not reported as a missing extra."""
    (tmp_path / "grukit_broken_pkg").mkdir()
    (tmp_path / "grukit_broken_pkg" / "__init__.py").write_text("import grukit_absent_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("grukit_broken_pkg", "cli", "f")
    assert type(info.value) is ModuleNotFoundError and info.value.name == "grukit_absent_dep"
    monkeypatch.delitem(sys.modules, "grukit_broken_pkg", raising=False)


def test_pyproject_puts_matplotlib_and_tqdm_in_the_cli_extra() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(SRC).parent / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in reqs}

    assert names(project["dependencies"]) == {"torch", "numpy", "safetensors", "ninja"}
    extras = project["optional-dependencies"]
    assert names(extras["cli"]) == set(EXTRAS)
    assert set(EXTRAS) <= names(extras["test"])


def test_a_train_command_without_the_cli_extra_stops_before_writing(tmp_path: Path) -> None:
    """`grukit forecast train` with matplotlib hidden: exit 2, one line naming the extra,
    and no run folder (the check comes before the first file)."""
    out = tmp_path / "run"
    code = BLOCK.format(blocked=("matplotlib",)) + (
        "from grukit.cli import main\n"
        f"raise SystemExit(main(['forecast', 'train', '--out', {str(out)!r}, '--epochs', '1',"
        " '--hidden-size', '4', '--no-progress']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("grukit forecast: error:") and "grukit[cli]" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()
