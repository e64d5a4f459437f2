"""Ratios, targets and the markdown table of the speed benchmark (pure functions).

Per grid point and contender (times are medians in milliseconds):
    infer_speedup_vs_torch  nn.GRU's inference time / the contender's   (> 1: faster)
    infer_speedup_vs_ort    ONNX Runtime's inference time / the contender's
    infer_speedup_vs_openvino  OpenVINO's inference time / the contender's
    infer_speedup_vs_peer   the faster peer's inference time / the contender's: the faster
                            of ONNX Runtime and OpenVINO, ONNX Runtime alone at T = 1
                            (OpenVINO's fixed call overhead; issue 21)
    infer_over_gemm         the contender's inference time / the GEMM bound's (>= 1)
    train_speedup_vs_torch  nn.GRU's training-step time / the contender's
    train_over_gemm         the contender's training-step time / the GEMM bound's
    mem_ratio_vs_torch      bytes saved for backward / nn.GRU's              (< 1: less)
A ratio is None ("n/a") when either side was not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .peers import BASELINE, GEMM, OPENVINO, ORT

__all__ = [
    "BF16_TARGETS", "Measurement", "TARGETS", "render_markdown", "summarize", "check_targets",
]  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """One contender at one grid point: median times (ms) and saved bytes, None if unmeasured."""

    infer_ms: float | None = None
    train_ms: float | None = None
    mem_bytes: int | None = None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _peer_ms(ort: float | None, openvino: float | None, streaming: bool) -> float | None:
    """The faster inference peer's time: ORT at T = 1, else the faster of ORT and OpenVINO
    (whichever was measured)."""
    times = [t for t in (ort, None if streaming else openvino) if t is not None]
    return min(times, default=None)


def summarize(
    measurements: dict[str, Measurement], *, streaming: bool = False
) -> list[dict[str, Any]]:
    """One row per contender with its times and every ratio (see the module docstring).

    ``measurements`` maps contender name → Measurement; the names ``BASELINE``
    ("torch.nn.GRU"), ``ORT`` ("onnxruntime"), ``OPENVINO`` ("openvino") and ``GEMM``
    ("gemm-bound") are the references (missing references give None ratios).
    ``streaming``: the point is a one-step call (T = 1), whose peer is ONNX Runtime.
    """
    none = Measurement()
    base = measurements.get(BASELINE, none)
    ort = measurements.get(ORT, none)
    ov = measurements.get(OPENVINO, none)
    peer = _peer_ms(ort.infer_ms, ov.infer_ms, streaming)
    gemm = measurements.get(GEMM, none)
    rows = []
    for name, m in measurements.items():
        rows.append(
            {
                "contender": name,
                "infer_ms": m.infer_ms,
                "infer_speedup_vs_torch": _ratio(base.infer_ms, m.infer_ms),
                "infer_speedup_vs_ort": _ratio(ort.infer_ms, m.infer_ms),
                "infer_speedup_vs_openvino": _ratio(ov.infer_ms, m.infer_ms),
                "infer_speedup_vs_peer": _ratio(peer, m.infer_ms),
                "infer_over_gemm": _ratio(m.infer_ms, gemm.infer_ms),
                "train_ms": m.train_ms,
                "train_speedup_vs_torch": _ratio(base.train_ms, m.train_ms),
                "train_over_gemm": _ratio(m.train_ms, gemm.train_ms),
                "mem_bytes": m.mem_bytes,
                "mem_ratio_vs_torch": _ratio(m.mem_bytes, base.mem_bytes),
            }
        )
    return rows


#: The issue's targets: (key, row field, "min"/"max" bound, bound, applies to point?).
TARGETS: tuple[tuple[str, str, str, float, Any], ...] = (
    ("train ≥ 2.0× nn.GRU (T > 1)", "train_speedup_vs_torch", "min", 2.0, lambda p: p["T"] > 1),
    ("infer ≥ 1.0× ORT", "infer_speedup_vs_ort", "min", 1.0, lambda p: True),
    (
        "infer ≥ 1.0× the faster of ORT, OpenVINO (T = 1: ORT)",
        "infer_speedup_vs_peer",
        "min",
        1.0,
        lambda p: True,
    ),
    (
        "infer ≤ 1.5× GEMM (N·H ≥ 8192)",
        "infer_over_gemm",
        "max",
        1.5,
        lambda p: p["N"] * p["H"] >= 8192,
    ),
    (
        "train ≤ 1.5× GEMM (N·H ≥ 8192)",
        "train_over_gemm",
        "max",
        1.5,
        lambda p: p["N"] * p["H"] >= 8192,
    ),
    ("train memory ≤ nn.GRU", "mem_ratio_vs_torch", "max", 1.0, lambda p: True),
)


#: Issue 21's targets under bfloat16 autocast (``--precision bf16``).
BF16_TARGETS: tuple[tuple[str, str, str, float, Any], ...] = (
    (
        "train ≥ 3.0× nn.GRU under autocast (N·H ≥ 16384)",
        "train_speedup_vs_torch",
        "min",
        3.0,
        lambda p: p["T"] > 1 and p["N"] * p["H"] >= 16384,
    ),
    (
        "infer ≥ 1.0× OpenVINO's bf16 (T > 1)",
        "infer_speedup_vs_openvino",
        "min",
        1.0,
        lambda p: p["T"] > 1,
    ),
)


def check_targets(points: list[dict[str, Any]], precision: str = "float32") -> list[dict[str, Any]]:
    """For each grukit backend (rows named ``grukit[...]``) and target: how many grid
    points meet it, of how many measured, and the worst value with its point.

    ``points``: dicts with I, H, N, T, label and rows (as ``summarize`` returns);
    ``precision``: "float32" (``TARGETS``) or "bf16" (``BF16_TARGETS``).
    """
    targets = BF16_TARGETS if precision == "bf16" else TARGETS
    names = sorted(
        {r["contender"] for p in points for r in p["rows"] if r["contender"].startswith("grukit[")}
    )
    out = []
    for name in names:
        for key, field, kind, bound, applies in targets:
            values = []
            for p in points:
                row = next((r for r in p["rows"] if r["contender"] == name), None)
                if applies(p) and row is not None and row[field] is not None:
                    values.append((row[field], p["label"]))
            met = [v for v, _ in values if (v >= bound if kind == "min" else v <= bound)]
            worst = (min if kind == "min" else max)(values, default=None)
            out.append(
                {
                    "contender": name,
                    "target": key,
                    "met": len(met),
                    "of": len(values),
                    "worst": None if worst is None else worst[0],
                    "worst_at": None if worst is None else worst[1],
                }
            )
    return out


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "ms":
        return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"
    if kind == "x":
        return f"{value:.2f}×"
    return f"{value:.2f}"


def render_markdown(result: dict[str, Any]) -> str:
    """The benchmark's result (as ``run_benchmark`` returns it) as markdown tables."""
    meta = result["meta"]
    load = meta.get("loadavg_1min_start_end")
    share = meta.get("other_processes_cpu_share")
    lines = [
        (f"Precision: {meta['precision']} · " if meta.get("precision") else "")
        + f"Threads: {meta['threads']} · torch {meta['torch']} · onnxruntime "
        f"{meta['onnxruntime'] or 'n/a'} · openvino {meta.get('openvino') or 'n/a'} · "
        f"median of {meta['repeats']} interleaved blocks · "
        f"{meta['ort_threads']}"
        + (f" · native kernel {meta['native_isa']}" if meta.get("native_isa") else "")
        + (f" · 1-min load average {load[0]} → {load[1]}" if load else "")
        + (f" · other processes' CPU share {share:.0%}" if share is not None else ""),
        "",
        "| I, H, N, T | contender | infer ms | vs nn.GRU | vs ORT | vs OpenVINO | / GEMM "
        "| train ms | vs nn.GRU | / GEMM | train mem / nn.GRU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in result["points"]:
        point = p.get("shape") or f"{p['I']}, {p['H']}, {p['N']}, {p['T']}"
        for r in p["rows"]:
            lines.append(
                f"| {point} | {r['contender']} | {_fmt(r['infer_ms'], 'ms')} "
                f"| {_fmt(r['infer_speedup_vs_torch'], 'x')} "
                f"| {_fmt(r['infer_speedup_vs_ort'], 'x')} "
                f"| {_fmt(r.get('infer_speedup_vs_openvino'), 'x')} "
                f"| {_fmt(r['infer_over_gemm'], 'r')} "
                f"| {_fmt(r['train_ms'], 'ms')} | {_fmt(r['train_speedup_vs_torch'], 'x')} "
                f"| {_fmt(r['train_over_gemm'], 'r')} | {_fmt(r['mem_ratio_vs_torch'], 'r')} |"
            )
    if result.get("targets"):
        lines += ["", "| backend | target | met | worst (at) |", "|---|---|--:|---|"]
        for t in result["targets"]:
            worst = "n/a" if t["worst"] is None else f"{t['worst']:.2f} ({t['worst_at']})"
            lines.append(f"| {t['contender']} | {t['target']} | {t['met']}/{t['of']} | {worst} |")
    if result.get("notes"):
        lines += ["", *[f"- {note}" for note in result["notes"]]]
    return "\n".join(lines) + "\n"
