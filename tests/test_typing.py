"""The types a checker sees: mypy (the project's strict config) on ``typing_cases.py``.

It passes only if every ``assert_type`` there holds (``forward``'s overloads: Tensor in,
Tensor out; PackedSequence in, PackedSequence out; LSTM states as (h, c)) and every call
marked ``# type: ignore[...]`` is rejected. The grukit checked is this checkout's ``src/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_typing_cases_check_under_mypy(monkeypatch: pytest.MonkeyPatch) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (the dev extra has it)")
    monkeypatch.setenv("MYPYPATH", str(ROOT / "src"))  # this checkout, not an installed grukit
    # The options are `make lint`'s, so its cache (.mypy_cache) serves this run: ~3 s, not ~30.
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            str(ROOT / "tests" / "typing_cases.py"),
        ]
    )
    assert status == 0, f"mypy on typing_cases.py:\n{stdout}{stderr}"
