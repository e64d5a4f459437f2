"""grukit.benchmark: the ORT peer, the GEMM bound, the report's ratios, ``grukit bench``.

No timings are asserted: only that the peers compute the right thing, that ratios are
computed right from given times, and that the CLI writes what it promises.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from grukit.benchmark.gemm import GemmBound
from grukit.benchmark.peers import BASELINE, GEMM, OPENVINO, ORT, GridPoint, build_contenders
from grukit.benchmark.report import Measurement, check_targets, render_markdown, summarize
from grukit.benchmark.timing import TimingConfig, median, time_interleaved
from grukit.cli import main


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize(
    "T,N,I,H,L,bi",
    [(7, 3, 5, 8, 1, False), (1, 1, 4, 6, 1, False), (7, 3, 5, 8, 2, False),
     (7, 3, 5, 8, 1, True), (6, 2, 4, 5, 3, True)],
)  # fmt: skip
def test_inference_peers_equal_torch_gru(
    runtime: str, T: int, N: int, I: int, H: int, L: int, bi: bool
) -> None:
    """ONNX Runtime and OpenVINO (the same ONNX graph, float32) give nn.GRU's outputs within
    1e-5 (DESIGN's interop contract), stacked and bidirectional too."""
    pytest.importorskip("onnx")
    pytest.importorskip(runtime)
    from grukit.benchmark.openvino import OpenVINOGRU
    from grukit.benchmark.ort import ORTGRU

    peer_class = ORTGRU if runtime == "onnxruntime" else OpenVINOGRU
    torch.manual_seed(0)
    gru = torch.nn.GRU(I, H, num_layers=L, bidirectional=bi)
    x, h0 = torch.randn(T, N, I), torch.randn(L * (2 if bi else 1), N, H)
    peer = peer_class.from_module(gru, seq_len=T, batch=N, threads=1)
    y, y_h = peer(x.numpy(), h0.numpy())
    with torch.no_grad():
        out, h_n = gru(x, h0)
    torch.testing.assert_close(torch.from_numpy(y.copy()), out, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(y_h.copy()), h_n, rtol=0, atol=1e-5)


@pytest.mark.parametrize("streaming", [False, True])
def test_the_inference_peer_is_the_faster_of_ort_and_openvino(streaming: bool) -> None:
    """infer_speedup_vs_peer: against the faster of ONNX Runtime and OpenVINO, against ORT
    alone at a one-step point (issue 21); the target counts it."""
    measurements = {
        BASELINE: Measurement(infer_ms=4.0, train_ms=12.0, mem_bytes=1000),
        "grukit[native]": Measurement(infer_ms=1.0, train_ms=3.0, mem_bytes=500),
        ORT: Measurement(infer_ms=2.0),
        OPENVINO: Measurement(infer_ms=0.5),
    }
    rows = {r["contender"]: r for r in summarize(measurements, streaming=streaming)}
    native = rows["grukit[native]"]
    assert native["infer_speedup_vs_ort"] == pytest.approx(2.0)
    assert native["infer_speedup_vs_openvino"] == pytest.approx(0.5)
    assert native["infer_speedup_vs_peer"] == pytest.approx(2.0 if streaming else 0.5)
    point = {"I": 2, "H": 3, "N": 4, "T": 1 if streaming else 5, "label": "p"}
    targets = check_targets([{**point, "rows": list(rows.values())}])
    peer = next(t for t in targets if t["target"].startswith("infer ≥ 1.0× the faster"))
    assert (peer["met"], peer["of"]) == ((1, 1) if streaming else (0, 1))
    without = summarize({k: v for k, v in measurements.items() if k != OPENVINO})
    assert next(r for r in without if r["contender"] == "grukit[native]")[
        "infer_speedup_vs_peer"
    ] == pytest.approx(2.0)


def test_gemm_bound_computes_the_gru_products() -> None:
    T, N, I, H = 4, 3, 5, 6
    g = torch.Generator().manual_seed(1)
    x, h_prev = torch.randn(T, N, I, generator=g), torch.randn(T, N, H, generator=g)
    w_ih, w_hh = torch.randn(3 * H, I, generator=g), torch.randn(3 * H, H, generator=g)
    dgi, dgh = torch.randn(T, N, 3 * H, generator=g), torch.randn(T, N, 3 * H, generator=g)
    bound = GemmBound(x, h_prev, w_ih, w_hh, dgi, dgh)
    res = bound.training()
    x64, h64 = x.double(), h_prev.double()
    wi, wh, di, dh = w_ih.double(), w_hh.double(), dgi.double(), dgh.double()
    for t in range(T):  # explicit per-step products, float64
        torch.testing.assert_close(res.forward.gi[t].double(), x64[t] @ wi.T, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(res.forward.gh[t].double(), h64[t] @ wh.T, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(res.dh[t].double(), dh[t] @ wh, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(res.dx[t].double(), di[t] @ wi, rtol=1e-5, atol=1e-5)
    dw_ih = sum(di[t].T @ x64[t] for t in range(T))  # (3H, I)
    dw_hh = sum(dh[t].T @ h64[t] for t in range(T))  # (3H, H)
    torch.testing.assert_close(res.dw_ih.double(), dw_ih, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res.dw_hh.double(), dw_hh, rtol=1e-5, atol=1e-5)
    inf = bound.inference()
    torch.testing.assert_close(inf.gi.double(), (x64 @ wi.T), rtol=1e-5, atol=1e-5)


def test_summarize_ratios_from_given_timings() -> None:
    rows = summarize(
        {
            BASELINE: Measurement(infer_ms=4.0, train_ms=12.0, mem_bytes=1000),
            "grukit[fused]": Measurement(infer_ms=2.0, train_ms=3.0, mem_bytes=500),
            ORT: Measurement(infer_ms=1.0),
            GEMM: Measurement(infer_ms=0.5, train_ms=2.0),
        }
    )
    by = {r["contender"]: r for r in rows}
    fused = by["grukit[fused]"]
    assert fused["infer_speedup_vs_torch"] == pytest.approx(2.0)
    assert fused["infer_speedup_vs_ort"] == pytest.approx(0.5)
    assert fused["infer_over_gemm"] == pytest.approx(4.0)
    assert fused["train_speedup_vs_torch"] == pytest.approx(4.0)
    assert fused["train_over_gemm"] == pytest.approx(1.5)
    assert fused["mem_ratio_vs_torch"] == pytest.approx(0.5)
    assert by[BASELINE]["infer_speedup_vs_torch"] == pytest.approx(1.0)
    assert by[ORT]["train_ms"] is None and by[ORT]["train_speedup_vs_torch"] is None
    assert by[GEMM]["mem_ratio_vs_torch"] is None


def test_summarize_without_ort_gives_none_and_markdown_says_na() -> None:
    rows = summarize({BASELINE: Measurement(1.0, 2.0, 10), "grukit[x]": Measurement(0.5, 1.0, 5)})
    assert all(r["infer_speedup_vs_ort"] is None for r in rows)
    point = {"I": 2, "H": 3, "N": 4, "T": 5, "label": "p", "rows": rows}
    targets = check_targets([point])
    train = next(t for t in targets if t["target"].startswith("train ≥"))
    assert (train["met"], train["of"], train["worst"]) == (1, 1, pytest.approx(2.0))
    meta = {"threads": 1, "torch": "t", "onnxruntime": None, "repeats": 3, "ort_threads": ""}
    md = render_markdown({"meta": meta, "points": [point], "targets": targets, "notes": []})
    assert "| 2, 3, 4, 5 | grukit[x] | 0.500 | 2.00× | n/a |" in md


@pytest.mark.parametrize(
    "names, rounds",
    [
        ("ab", ["ab", "ba", "ab", "ba"]),
        ("abc", ["abc", "bca", "cab", "abc"]),  # rotated: no peer always follows another
    ],
)
def test_timing_calibrates_each_peer_then_interleaves_rotated_rounds(
    names: str, rounds: list[str]
) -> None:
    order: list[str] = []
    fns = {n: (lambda n=n: order.append(n)) for n in names}
    blocks: list[str] = []
    cfg = TimingConfig(repeats=4, warmup_s=0.0, block_s=0.0, pause_s=0.0)
    samples = time_interleaved(fns, cfg, on_block=lambda: blocks.append(order[-1]))
    # warmup_s = block_s = 0: calibration is one call per peer and every block one call.
    assert "".join(order) == names + "".join(rounds)
    assert "".join(blocks) == "".join(rounds)  # on_block after every block, not calibration
    assert {k: len(v) for k, v in samples.items()} == {n: 4 for n in names}
    assert all(t >= 0 for v in samples.values() for t in v)


def test_median_and_timing_config_checks() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="median: expected at least one value"):
        median([])
    with pytest.raises(ValueError, match="repeats"):
        TimingConfig(repeats=0)


def test_contenders_share_weights_and_match_torch() -> None:
    contenders, _ = build_contenders(GridPoint(4, 8, 1, 1), threads=1)
    names = [c.name for c in contenders]
    assert names[0] == BASELINE and GEMM in names
    assert "torch.nn.GRUCell" in names and "grukit.GRUCell" in names
    assert ORT in names and OPENVINO in names  # both installed with the test extras
    ref = contenders[0].output()
    for c in contenders[1:]:
        if c.output is not None:
            torch.testing.assert_close(c.output(), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="GridPoint: expected I > 0, got 0"):
        GridPoint(0, 8, 1, 1)
    with pytest.raises(TypeError, match="GridPoint: expected T to be an int, got float"):
        GridPoint(4, 8, 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GridPoint: expected bidirectional to be a bool"):
        GridPoint(4, 8, 1, 1, bidirectional=1)  # type: ignore[arg-type]


def test_stacked_bidirectional_point_compares_the_same_model() -> None:
    """A two-layer bidirectional point: every contender runs that model on shared weights
    (outputs within 1e-5 of nn.GRU's, (T, N, 2H)); no GEMM bound or cells there."""
    point = GridPoint(4, 8, 3, 5, layers=2, bidirectional=True)
    contenders, notes = build_contenders(point, threads=1)
    names = [c.name for c in contenders]
    assert GEMM not in names and "grukit.GRUCell" not in names and ORT in names
    assert any("GEMM bound" in n for n in notes)
    ref = contenders[0].output()
    assert ref.shape == (5, 3, 16)
    for c in contenders[1:]:
        torch.testing.assert_close(c.output(), ref, rtol=0, atol=1e-5)
    assert point.shape == "4, 8, 3, 5, 2 layers, bidirectional"
    with pytest.raises(ValueError, match="layers"):
        GridPoint(4, 8, 3, 5, layers=0)


def test_cli_bench_quick_writes_json_and_markdown(tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--quick",
            "--out",
            str(out),
            "--threads",
            "1",
            "--repeats",
            "2",
            "--backends",
            "reference",
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads((out / "speed.json").read_text())
    assert set(result) == {"meta", "points", "targets", "notes"}
    assert result["meta"]["threads"] == 1 and result["meta"]["repeats"] == 2
    shapes = [(p["T"], p["N"], p["layers"], p["bidirectional"]) for p in result["points"]]
    assert shapes == [(10, 4, 1, False), (1, 1, 1, False), (10, 4, 2, True)]
    row_keys = {
        "contender",
        "infer_ms",
        "infer_speedup_vs_torch",
        "infer_speedup_vs_ort",
        "infer_speedup_vs_openvino",
        "infer_speedup_vs_peer",
        "infer_over_gemm",
        "train_ms",
        "train_speedup_vs_torch",
        "train_over_gemm",
        "mem_bytes",
        "mem_ratio_vs_torch",
    }
    for p in result["points"]:
        names = {r["contender"] for r in p["rows"]}
        assert {BASELINE, "grukit[reference]"} <= names
        assert (GEMM in names) == (p["layers"] == 1 and not p["bidirectional"])
        for r in p["rows"]:
            assert set(r) == row_keys
            assert r["infer_ms"] is None or (r["infer_ms"] > 0 and math.isfinite(r["infer_ms"]))
    md = (out / "speed.md").read_text()
    assert "| I, H, N, T | contender |" in md and "grukit[reference]" in md
    assert "speed.json" in capsys.readouterr().out


def test_cli_bench_rejects_unknown_backend(tmp_path) -> None:
    code = main(["bench", "--quick", "--out", str(tmp_path), "--backends", "nope"])
    assert code == 2


def test_bf16_precision_runs_the_torch_modules_under_autocast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--precision bf16: nn.GRU and grukit run under bfloat16 autocast (grukit with its
    bfloat16 GEMMs, forced on here), OpenVINO with its bf16 hint; outputs within bfloat16
    rounding of float32 nn.GRU's; no GEMM bound."""
    monkeypatch.setenv("GRUKIT_BF16_GEMMS", "1")
    point = GridPoint(6, 16, 3, 5)
    contenders, notes = build_contenders(point, threads=1, backends=["native"], precision="bf16")
    names = [c.name for c in contenders]
    assert GEMM not in names and any("n/a under bf16" in n for n in notes)
    f32, _ = build_contenders(point, threads=1, backends=["native"])
    exact = f32[0].output()
    for c in contenders:
        if c.output is not None:
            out = c.output()
            assert out.dtype == torch.float32
            torch.testing.assert_close(out, exact, rtol=0, atol=3e-2)
    by_name = {c.name: c for c in contenders}
    low = by_name["grukit[native]"].output()
    assert (low - exact).abs().max() > 1e-5  # the bfloat16 GEMMs ran
    with pytest.raises(ValueError, match="precision"):
        build_contenders(point, threads=1, precision="fp8")


def test_bf16_targets_are_issue_21s() -> None:
    rows = summarize(
        {BASELINE: Measurement(10.0, 30.0), "grukit[native]": Measurement(4.0, 9.0),
         OPENVINO: Measurement(5.0, None)}
    )  # fmt: skip
    points = [
        {"I": 256, "H": 512, "N": 64, "T": 100, "label": "big", "rows": rows},
        {"I": 28, "H": 256, "N": 32, "T": 35, "label": "d2l", "rows": rows},
    ]
    got = {t["target"]: (t["met"], t["of"]) for t in check_targets(points, "bf16")}
    assert got == {
        "train ≥ 3.0× nn.GRU under autocast (N·H ≥ 16384)": (1, 1),  # 30 / 9 = 3.3
        "infer ≥ 1.0× OpenVINO's bf16 (T > 1)": (2, 2),  # 5 / 4
    }


def test_cli_bench_precision_option(tmp_path) -> None:
    code = main(
        ["bench", "--quick", "--out", str(tmp_path), "--threads", "1", "--repeats", "2",
         "--backends", "reference", "--no-progress", "--precision", "bf16"]
    )  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "speed.json").read_text())
    assert result["meta"]["precision"] == "bf16"
    assert "Precision: bf16" in (tmp_path / "speed.md").read_text()
    assert main(["bench", "--quick", "--out", str(tmp_path), "--precision", "fp8"]) == 2
