"""Issue 21's ISA table: the native kernel's speed-benchmark ratios under one instruction
set against another's (pure functions; ``benchmarks/isa_compare.py`` runs the grid).

Each ISA's run is the speed benchmark in its own process with ``GRUKIT_ISA`` set, so each
ratio is same-process (the kernel and its peers timed together); across ISAs only those
ratios are compared, never times. For every grid point and metric

    relative(isa) = ratio(isa) / ratio(reference)        reference: the widest ISA run

where ratio is the native kernel's training-step speed-up over ``torch.nn.GRU``
(``train_speedup_vs_torch``) or its inference speed-up over the faster peer
(``infer_speedup_vs_peer``). The issue's target, "AVX2 within 20% of AVX-512", is
relative ≥ ``WITHIN`` (0.8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grukit.backends.native.build import ISAS

__all__ = ["CAPABILITY", "METRICS", "WITHIN", "IsaRow", "compare_isas", "render_isa_markdown"]

#: The native kernel's ``cpu_capability()`` (the speed benchmark's ``meta.native_isa``) a
#: build for each ``GRUKIT_ISA`` value reports.
CAPABILITY = {"avx512": "AVX512", "avx2": "AVX2", "generic": "DEFAULT"}
#: (name in the table, the speed benchmark's ratio).
METRICS = (
    ("train vs nn.GRU", "train_speedup_vs_torch"),
    ("infer vs peer", "infer_speedup_vs_peer"),
)
#: "within 20%": a narrower ISA's ratio at least this share of the widest's.
WITHIN = 0.8
CONTENDER = "grukit[native]"


@dataclass(frozen=True)
class IsaRow:
    """One grid point and metric: each ISA's ratio, and its share of the reference's."""

    point: str
    metric: str
    ratios: dict[str, float | None]
    relative: dict[str, float | None]

    def within(self, isa: str) -> bool | None:
        """relative ≥ WITHIN for ``isa`` (None where either side was not measured)."""
        rel = self.relative.get(isa)
        return None if rel is None else rel >= WITHIN


def _meta(isa: str, run: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = run.get("meta")
    if not isinstance(meta, Mapping) or not isinstance(run.get("points"), list):
        raise ValueError(
            f"compare_isas: expected {isa}'s run to be a speed benchmark result with 'meta' "
            f"and 'points', got keys {sorted(run)}"
        )
    built = meta.get("native_isa")
    if built != CAPABILITY[isa]:
        raise ValueError(
            f"compare_isas: expected {isa}'s run to time a native kernel built for "
            f"{CAPABILITY[isa]}, got native_isa {built!r}"
        )
    return meta


def _point_ratios(isa: str, run: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """point label → {ratio key → the native kernel's value}."""
    out: dict[str, dict[str, float | None]] = {}
    for p in run["points"]:
        rows = [r for r in p["rows"] if r["contender"] == CONTENDER]
        if not rows:
            raise ValueError(
                f"compare_isas: expected a {CONTENDER} row at {p['label']} in {isa}'s run, "
                f"got {[r['contender'] for r in p['rows']]}"
            )
        out[p["label"]] = {key: rows[0].get(key) for _, key in METRICS}
    return out


def compare_isas(runs: Mapping[str, Mapping[str, Any]]) -> list[IsaRow]:
    """Rows of the ISA table from ``runs``: ISA name (``ISAS``) → that ISA's speed benchmark
    result (``speed.json``). The runs must share threads, precision and grid, and each must
    have timed the kernel built for its ISA; ValueError names the first that does not."""
    unknown = sorted(set(runs) - set(ISAS))
    if unknown or len(runs) < 2:
        raise ValueError(
            f"compare_isas: expected two or more runs keyed by {list(ISAS)}, got {sorted(runs)}"
        )
    order = [isa for isa in ISAS if isa in runs]  # widest first: the reference
    metas = {isa: _meta(isa, runs[isa]) for isa in order}
    for key, default in (("threads", None), ("precision", "float32")):  # older runs: float32
        values = {isa: metas[isa].get(key, default) for isa in order}
        if len(set(map(repr, values.values()))) > 1:
            raise ValueError(f"compare_isas: expected the runs to share {key}, got {values}")
    ratios = {isa: _point_ratios(isa, runs[isa]) for isa in order}
    grid = list(ratios[order[0]])
    for isa in order[1:]:
        if list(ratios[isa]) != grid:
            raise ValueError(
                f"compare_isas: expected {isa}'s grid to be {order[0]}'s {grid}, "
                f"got {list(ratios[isa])}"
            )
    rows = []
    for point in grid:
        for name, key in METRICS:
            values = {isa: ratios[isa][point][key] for isa in order}
            ref = values[order[0]]
            relative = {isa: None if v is None or not ref else v / ref for isa, v in values.items()}
            rows.append(IsaRow(point, name, values, relative))
    return rows


def render_isa_markdown(rows: list[IsaRow], runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The ISA table: a column per ISA (its ratio, and its share of the reference's),
    ✓/✗ for "within 20%", then a count per ISA."""
    order = [isa for isa in ISAS if isa in runs]
    ref = order[0]
    meta = runs[ref]["meta"]
    header = (
        f"Native kernel, each ISA's ratios from its own same-process run · threads "
        f"{meta.get('threads')} · {meta.get('precision') or 'float32'} · "
        f"{meta.get('processor', 'CPU n/a')} · reference {ref}; within 20%: ≥ {WITHIN:.0%} of "
        f"{ref}'s ratio"
    )
    cols = [ref, *[f"{isa} (÷ {ref})" for isa in order[1:]]]
    lines = [header, "", "| point | metric | " + " | ".join(cols) + " |"]
    lines.append("|---|---|" + "--:|" * len(cols))

    def cell(row: IsaRow, isa: str) -> str:
        value = row.ratios[isa]
        if value is None:
            return "n/a"
        if isa == ref:
            return f"{value:.2f}×"
        ok = row.within(isa)
        mark = "" if ok is None else (" ✓" if ok else " ✗")
        return f"{value:.2f}× ({row.relative[isa]:.2f}{mark})"

    for row in rows:
        lines.append(
            f"| {row.point} | {row.metric} | " + " | ".join(cell(row, i) for i in order) + " |"
        )
    lines.append("")
    for isa in order[1:]:
        judged = [ok for ok in (r.within(isa) for r in rows) if ok is not None]
        lines.append(f"- {isa}: within 20% of {ref} at {sum(judged)} of {len(judged)}")
    return "\n".join(lines) + "\n"
