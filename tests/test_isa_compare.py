"""Issue 21's ISA table (``grukit.benchmark.isa``, ``benchmarks/isa_compare.py``): each
narrower ISA's ratio as a share of the widest's, "within 20%" judged at 0.8; runs that do
not compare (another grid, threads or precision, a kernel not built for the ISA named, no
native row, one run) are refused by name; the real speed benchmark's result has every
field the table reads; the script compares runs already on disk and exits 2 on bad ones."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grukit.backends.native import build
from grukit.benchmark import BenchConfig, GridPoint, TimingConfig, run_benchmark
from grukit.benchmark.isa import CAPABILITY, WITHIN, compare_isas, render_isa_markdown

ROOT = Path(__file__).resolve().parents[1]


def _run(isa: str, ratios: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """A speed result: point label → (train vs nn.GRU, infer vs peer) of grukit[native]."""
    return {
        "meta": {"native_isa": CAPABILITY[isa], "threads": 2, "precision": "float32",
                 "processor": "test CPU"},
        "points": [
            {"label": label, "rows": [
                {"contender": "torch.nn.GRU", "train_speedup_vs_torch": 1.0,
                 "infer_speedup_vs_peer": 0.5},
                {"contender": "grukit[native]", "train_speedup_vs_torch": train,
                 "infer_speedup_vs_peer": infer},
            ]}
            for label, (train, infer) in ratios.items()
        ],
    }  # fmt: skip


def test_relative_is_each_ratio_over_the_widest_isas() -> None:
    runs = {
        "generic": _run("generic", {"a": (1.0, 0.5), "b": (2.0, None)}),
        "avx512": _run("avx512", {"a": (2.5, 1.25), "b": (2.0, 1.0)}),
        "avx2": _run("avx2", {"a": (2.0, 1.25), "b": (1.5, 1.1)}),
    }
    rows = compare_isas(runs)
    assert [(r.point, r.metric) for r in rows] == [
        ("a", "train vs nn.GRU"), ("a", "infer vs peer"),
        ("b", "train vs nn.GRU"), ("b", "infer vs peer"),
    ]  # fmt: skip
    a_train, a_infer, b_train, b_infer = rows
    assert a_train.relative == pytest.approx({"avx512": 1.0, "avx2": 0.8, "generic": 0.4})
    assert a_train.within("avx2") is True and a_train.within("generic") is False  # 0.8: within
    assert b_train.relative["avx2"] == pytest.approx(0.75) and b_train.within("avx2") is False
    assert b_train.relative["generic"] == pytest.approx(1.0)  # faster than the reference counts
    assert b_infer.relative["generic"] is None and b_infer.within("generic") is None
    assert a_infer.within("avx2") is True
    table = render_isa_markdown(rows, runs)
    assert "| avx512 | avx2 (÷ avx512) | generic (÷ avx512) |" in table
    assert "| a | train vs nn.GRU | 2.50× | 2.00× (0.80 ✓) | 1.00× (0.40 ✗) |" in table
    assert "| b | infer vs peer | 1.00× | 1.10× (1.10 ✓) | n/a |" in table
    assert "- avx2: within 20% of avx512 at 3 of 4" in table
    assert "- generic: within 20% of avx512 at 1 of 3" in table
    assert WITHIN == 0.8


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r["meta"].update(threads=1), "expected the runs to share threads"),
        (lambda r: r["meta"].update(precision="bf16"), "expected the runs to share precision"),
        (lambda r: r["meta"].update(native_isa="AVX512"),
         "expected avx2's run to time a native kernel built for AVX2, got native_isa 'AVX512'"),
        (lambda r: r["meta"].update(native_isa=None), "got native_isa None"),
        (lambda r: r["points"].pop(), r"expected avx2's grid to be avx512's \['a', 'b'\]"),
        (lambda r: r["points"][0]["rows"].pop(), "expected a grukit\\[native\\] row at a"),
        (lambda r: r.pop("meta"), "with 'meta' and 'points', got keys \\['points'\\]"),
    ],
)  # fmt: skip
def test_runs_that_do_not_compare_are_refused(change: Any, match: str) -> None:
    avx2 = _run("avx2", {"a": (2.0, 1.0), "b": (1.5, 1.0)})
    change(avx2)
    with pytest.raises(ValueError, match=match):
        compare_isas({"avx512": _run("avx512", {"a": (2.0, 1.0), "b": (2.0, 1.0)}), "avx2": avx2})


def test_fewer_than_two_runs_or_unknown_isas_are_refused() -> None:
    with pytest.raises(ValueError, match="two or more runs keyed by"):
        compare_isas({"avx2": _run("avx2", {"a": (2.0, 1.0)})})
    with pytest.raises(ValueError, match=r"got \['avx2', 'neon'\]"):
        compare_isas({"avx2": _run("avx2", {"a": (2.0, 1.0)}), "neon": {}})


def test_runnable_isas_follow_the_cpu_flags() -> None:
    assert build.runnable_isas(set()) == ["generic"]
    assert build.runnable_isas({"avx2", "fma"}) == ["avx2", "generic"]
    assert build.runnable_isas(build.AVX512 | build.AVX2) == ["avx512", "avx2", "generic"]
    assert build.best_isa({"avx2"}) == "generic"  # AVX2 without FMA is not the AVX2 build


def test_the_speed_benchmarks_result_has_what_the_table_reads() -> None:
    """A real (tiny) run of the speed benchmark, compared with itself relabelled: every key
    the table reads is in it, and a run against itself is within at every ratio."""
    if build.load() is None:
        pytest.skip(f"native kernel unavailable: {build.failure()}")
    timing = TimingConfig(repeats=1, warmup_s=0.0, block_s=0.001, pause_s=0.0)
    cfg = BenchConfig(
        grid=(GridPoint(3, 4, 2, 3),), threads=1, timing=timing, backends=("native",),
        progress=False,
    )  # fmt: skip
    result = run_benchmark(cfg)
    assert result["meta"]["native_isa"] in CAPABILITY.values()
    wide, narrow = copy.deepcopy(result), copy.deepcopy(result)
    wide["meta"]["native_isa"], narrow["meta"]["native_isa"] = "AVX2", "DEFAULT"
    rows = compare_isas({"avx2": wide, "generic": narrow})
    assert len(rows) == 2 and all(r.relative["generic"] == 1.0 for r in rows)


def _write(root: Path, runs: dict[str, dict[str, Any]]) -> None:
    for isa, run in runs.items():
        (root / isa).mkdir(parents=True)
        (root / isa / "speed.json").write_text(json.dumps(run))


def test_script_compares_runs_on_disk(tmp_path: Path) -> None:
    _write(tmp_path, {"avx2": _run("avx2", {"a": (2.0, 1.0)}),
                      "generic": _run("generic", {"a": (1.0, 0.9)})})  # fmt: skip
    cmd = [sys.executable, str(ROOT / "benchmarks" / "isa_compare.py"), "--compare-only"]
    res = subprocess.run(
        [*cmd, "--isas", "avx2", "generic", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "| a | train vs nn.GRU | 2.00× | 1.00× (0.50 ✗) |" in res.stdout
    assert (tmp_path / "isa.md").read_text() == res.stdout
    saved = json.loads((tmp_path / "isa.json").read_text())
    assert saved["isas"] == ["avx2", "generic"] and saved["rows"][0]["relative"]["generic"] == 0.5
    bad = subprocess.run(
        [*cmd, "--isas", "avx512", "avx2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("isa_compare.py: error:")
    assert "Traceback" not in bad.stderr
    one = subprocess.run(
        [*cmd, "--isas", "avx2", "avx2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert one.returncode == 2
    assert one.stderr == "isa_compare.py: error: two or more ISAs, got ['avx2']\n"
