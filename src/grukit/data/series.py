"""Time series for forecasting: loading, gap filling, splits, transforms, windows.

Letters: T time steps, C columns (variables; column 0 is the target), L lookback,
H horizon, N windows.

Pipeline (each step invertible, each fitted on the training part only)::

    y (T, C) ──log──► log y ──difference(lag d)──► Δ ──scale (train mean/std)──► z (T, C)

A chronological split puts the last H points in test, the V points before them in
validation and the rest in training. A window is ``z[s : s+L]`` → ``z[s+L : s+L+H]``;
training windows have every target index in the training part, validation windows
every target in the validation part, and nothing but the final forecast reads a
test index (``window_indices`` returns the indices so tests can assert this).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .csvio import Table, Timeline, _where, parse_timeline, read_table

__all__ = [
    "BUNDLED",
    "Series",
    "Split",
    "Transform",
    "Scaler",
    "load_bundled",
    "load_csv",
    "fill_gaps",
    "MAX_INSERTED",
    "chronological_split",
    "window_indices",
]


@dataclass(frozen=True)
class Bundled:
    file: str
    date_column: str
    columns: tuple[str, ...]
    horizon: int  # default test length
    unit: str  # y-axis label


#: The series shipped in ``grukit/data/files`` (provenance in its README).
BUNDLED = {
    "airline": Bundled("airline-passengers.csv", "Month", ("Passengers",), 24, "thousands"),
    "co2": Bundled("co2-mauna-loa-weekly.csv", "date", ("co2",), 52, "ppmv"),
}


@dataclass
class Series:
    """A filled, regular series: ``values`` (T, C), column 0 the target."""

    name: str
    columns: list[str]
    values: np.ndarray  # (T, C) float64, no NaN
    timeline: Timeline | None  # None: no date column, the row number is the time
    missing_values: int  # empty cells in the file
    inserted_timestamps: int  # grid points absent from the file
    filled_values: int  # cells filled by interpolation (missing + inserted·C)
    unit: str = ""

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def times(self) -> list[Any]:
        """x values for plots: datetimes, or 0..T−1."""
        if self.timeline is None:
            return list(range(len(self)))
        return [self.timeline.to_datetime(o) for o in self.timeline.ordinals]

    def future(self, horizon: int) -> tuple[list[Any], list[str]]:
        """(x values, labels) of the ``horizon`` steps after the last one."""
        if self.timeline is None:
            rows = list(range(len(self), len(self) + horizon))
            return rows, [str(x) for x in rows]
        last, step = int(self.timeline.ordinals[-1]), self.timeline.step
        ords = [last + step * (k + 1) for k in range(horizon)]
        xs = [self.timeline.to_datetime(o) for o in ords]
        return xs, [self.timeline.to_text(o) for o in ords]

    def default_season(self) -> int:
        return self.timeline.default_season() if self.timeline is not None else 1

    def fill_report(self) -> dict[str, int]:
        return {
            "missing_values": self.missing_values,
            "inserted_timestamps": self.inserted_timestamps,
            "filled_values": self.filled_values,
        }


#: Gap filling inserts at most this many grid points, or as many as the series has rows.
MAX_INSERTED = 1_000_000


class _TooManyGaps(ValueError):
    """fill_gaps' refusal, with what ``_from_table`` needs to name the dates."""

    def __init__(self, message: str, row: int, inserted: int, limit: int) -> None:
        super().__init__(message)
        self.row, self.inserted, self.limit = row, inserted, limit


def fill_gaps(
    values: np.ndarray,
    ordinals: np.ndarray | None = None,
    step: int = 1,
    *,
    max_inserted: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Insert the grid points missing from ``ordinals`` and fill NaNs linearly.

    values (T, C) with NaN where missing; ordinals (T,) increasing, on a grid of ``step``.
    Returns (filled (T', C), ordinals (T',), missing values, inserted timestamps).
    Interior gaps are linearly interpolated in time; leading or trailing ones take
    the nearest observed value. Raises ValueError for a column with no value, and for
    gaps that would insert more than ``max_inserted`` grid points (default: T or
    ``MAX_INSERTED``, whichever is more): one stray date far away would otherwise ask
    for an array of billions of rows.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"fill_gaps: expected values of shape (T, C), T ≥ 1, got {values.shape}")
    missing = int(np.isnan(values).sum())
    inserted = 0
    out = None
    if ordinals is not None:
        ordinals = np.asarray(ordinals, dtype=np.int64)  # (T,)
        if ordinals.shape != values.shape[:1] or isinstance(step, bool) or step <= 0:
            raise ValueError(
                f"fill_gaps: expected ordinals of shape ({values.shape[0]},) and a step > 0, "
                f"got {ordinals.shape} and {step!r}"
            )
        offsets = ordinals - ordinals[0]  # (T,)
        pos = offsets // step  # (T,) grid positions
        if bool((offsets % step != 0).any()) or bool((np.diff(pos) <= 0).any()):
            raise ValueError(
                f"fill_gaps: expected increasing ordinals on a grid of step {step}, got others"
            )
        inserted = int(pos[-1]) + 1 - values.shape[0]
        limit = max(values.shape[0], MAX_INSERTED) if max_inserted is None else max_inserted
        if inserted > limit:
            row = int(np.argmax(np.diff(pos)))  # the widest gap follows this row
            raise _TooManyGaps(
                f"fill_gaps: expected at most {limit:,} grid points to insert, got {inserted:,} "
                f"(the widest gap follows row {row} of {values.shape[0]})",
                row,
                inserted,
                limit,
            )
        if inserted:
            out = np.full((int(pos[-1]) + 1, values.shape[1]), np.nan)  # (T', C)
            out[pos] = values
            ordinals = ordinals[0] + step * np.arange(out.shape[0], dtype=np.int64)  # (T',)
    filled = out if out is not None else values.copy()  # (T', C)
    t = None
    for c in range(filled.shape[1]):
        ok = ~np.isnan(filled[:, c])  # (T',)
        if ok.all():
            continue
        if not ok.any():
            raise ValueError(f"fill_gaps: expected column {c} to hold a value, got none")
        if t is None:
            t = np.arange(filled.shape[0], dtype=np.float64)  # (T',)
        filled[:, c] = np.interp(t, t[ok], filled[ok, c])  # flat beyond the ends
    return filled, ordinals, missing, inserted


def _from_table(table: Table, name: str, unit: str = "") -> Series:
    timeline = parse_timeline(table) if table.date_column is not None else None
    ords = timeline.ordinals if timeline is not None else None
    step = timeline.step if timeline is not None else 1
    empty = np.nonzero(np.isnan(table.values).all(axis=0))[0]  # (k,) columns with no value
    if empty.size:
        column = table.columns[int(empty[0])]
        raise ValueError(
            f"{_where(table.source, column=column)}: expected at least one value, got none "
            f"(all {table.values.shape[0]:,} rows empty or NaN)"
        )
    try:
        values, ords, missing, inserted = fill_gaps(table.values, ords, step)
    except _TooManyGaps as err:
        assert timeline is not None
        i = err.row + 1
        a, b = (timeline.to_text(int(timeline.ordinals[k])) for k in (i - 1, i))
        gap = (int(timeline.ordinals[i]) - int(timeline.ordinals[i - 1])) // step - 1
        raise ValueError(
            f"{_where(table.source, int(table.lines[i]), table.date_column)}: expected gaps "
            f"that insert at most {err.limit:,} missing timestamps in all, got {err.inserted:,}; "
            f"the widest: {b!r} after {a!r}, {gap:,} steps of {timeline.label()} missing "
            f"between them"
        ) from None
    if timeline is not None and ords is not None:  # ords is None exactly without a timeline
        timeline = Timeline(timeline.unit, timeline.step, ords)
    return Series(
        name=name,
        columns=list(table.columns),
        values=values,
        timeline=timeline,
        missing_values=missing,
        inserted_timestamps=inserted,
        filled_values=int(missing + inserted * values.shape[1]),
        unit=unit,
    )


def load_csv(
    path: str | os.PathLike[str], columns: list[str], *, date_column: str | None = None
) -> Series:
    """A user's CSV: ``columns`` (the first is the target) and optional ``date_column``."""
    name = os.path.basename(str(path))
    return _from_table(read_table(path, columns, date_column=date_column), name=name)


def load_bundled(name: str) -> Series:
    """A bundled series: "airline" (monthly, 1949–1960) or "co2" (weekly, 1958–2001)."""
    if name not in BUNDLED:
        raise ValueError(f"load_bundled: expected a dataset in {sorted(BUNDLED)}, got {name!r}")
    b = BUNDLED[name]
    ref = resources.files("grukit.data") / "files" / b.file
    with resources.as_file(ref) as path:
        table = read_table(path, list(b.columns), date_column=b.date_column, source=b.file)
    return _from_table(table, name=name, unit=b.unit)


# -- split --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Index ranges [0, train_end), [train_end, test_start), [test_start, n)."""

    n: int
    train_end: int
    test_start: int

    def to_dict(self) -> dict[str, int]:
        return {"n": self.n, "train_end": self.train_end, "test_start": self.test_start}


def chronological_split(n: int, horizon: int, validation: int, *, min_train: int = 1) -> Split:
    """Test = the last ``horizon`` points, validation = the ``validation`` before them."""
    for label, v in (("horizon", horizon), ("validation", validation)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if label == "horizon" else 0):
            raise ValueError(f"chronological_split: expected {label} a positive int, got {v!r}")
    split = Split(n=n, train_end=n - horizon - validation, test_start=n - horizon)
    if split.train_end < min_train:
        raise ValueError(
            f"chronological_split: expected at least {min_train} training points (lookback + "
            f"horizon + differencing lag) before validation ({validation}) and test "
            f"({horizon}), got {split.train_end} of {n}; use a shorter lookback or horizon"
        )
    return split


def window_indices(
    lookback: int, horizon: int, first: int, target_lo: int, target_hi: int, *, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of every window whose inputs start at ``first`` or later and whose
    targets all lie in [target_lo, target_hi).

    Returns (inputs (N, L), targets (N, H)): ``inputs[k] = s..s+L−1``,
    ``targets[k] = s+L..s+L+H−1``.
    """
    lo = max(first, target_lo - lookback)  # earliest start s
    hi = target_hi - lookback - horizon  # latest start s
    starts = np.arange(lo, hi + 1, stride, dtype=np.int64)  # (N,)
    inputs = starts[:, None] + np.arange(lookback)  # (N, L)
    targets = starts[:, None] + lookback + np.arange(horizon)  # (N, H)
    return inputs, targets


# -- transforms ---------------------------------------------------------------------------
@dataclass
class Transform:
    """Optional log, then differencing at lag ``diff`` (0: none), on every column.

    ``forward`` keeps the length: the first ``diff`` rows are NaN.
    ``invert(z_future, history)`` turns target-column forecasts back into levels,
    summing the differences onto the history (and earlier forecasts).
    """

    log: bool = False
    diff: int = 0

    def forward(self, y: np.ndarray) -> np.ndarray:
        """y (T, C) → (T, C)."""
        y = np.asarray(y, dtype=np.float64)
        if self.log:
            bad = np.argwhere(y <= 0)
            if bad.size:
                t, c = bad[0]
                raise ValueError(
                    f"Transform: expected positive values for the log transform, got {y[t, c]} "
                    f"at row {t}, column {c}"
                )
            y = np.log(y)
        if self.diff:
            out = np.full_like(y, np.nan)
            out[self.diff :] = y[self.diff :] - y[: -self.diff]
            y = out
        return y

    def invert(self, z: np.ndarray, history: np.ndarray) -> np.ndarray:
        """z (H, K): K forecast paths of the transformed target after ``history`` (T,)
        levels → (H, K) levels."""
        z = np.asarray(z, dtype=np.float64)
        base = np.log(history) if self.log else np.asarray(history, dtype=np.float64)
        if self.diff:
            if base.shape[0] < self.diff:
                raise ValueError(
                    f"Transform: expected at least {self.diff} history points to undo "
                    f"differencing, got {base.shape[0]}"
                )
            h = z.shape[0]
            levels = np.empty((self.diff + h, z.shape[1]))  # (d + H, K)
            levels[: self.diff] = base[-self.diff :, None]
            for t in range(h):
                levels[self.diff + t] = levels[t] + z[t]
            z = levels[self.diff :]
        return np.exp(z) if self.log else z

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log, "diff": self.diff}


@dataclass
class Scaler:
    """Per-column standardisation z = (x − mean) / std, fitted on training rows."""

    mean: np.ndarray  # (C,)
    std: np.ndarray  # (C,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        """x (T_train, C), NaN rows (differencing's head) ignored."""
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant column stays centred
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z: np.ndarray = (x - self.mean) / self.std
        return z

    def inverse(self, z: np.ndarray, column: int = 0) -> np.ndarray:
        """Scaled values of one ``column`` (any shape) back to its units."""
        x: np.ndarray = z * self.std[column] + self.mean[column]
        return x

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64))
