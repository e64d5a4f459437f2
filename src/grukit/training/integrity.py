"""Integrity of what a run reads back: content hashes and the invariants of a checkpoint.

A file that fails any of these checks is refused with a ValueError naming the file and
what was expected; nothing half-checked is ever loaded into a model or an optimizer.

- ``content_digest(data)``: sha256 of a safetensors file's tensor table (names, dtypes,
  shapes, offsets), its metadata (less the digest itself) and its body. A flipped bit in
  the body, a dtype relabelled in the header or an edited config all change it.
- ``check_state_dict``: the keys, dtypes and shapes a model expects, every value finite.
- ``check_optimizer_state``: the optimizer's parameter groups, per-parameter state of the
  parameter's shape and dtype, every number finite.
- ``check_rng_state``, ``check_epoch``, ``finite_number``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DIGEST_KEY",
    "TrainingDiverged",
    "check_epoch",
    "check_optimizer_state",
    "check_rng_state",
    "check_state_dict",
    "content_digest",
    "finite_number",
]

#: The metadata key of a file's content digest (safetensors header, ``__metadata__``).
DIGEST_KEY = "grukit.sha256"


class TrainingDiverged(ValueError):
    """The loss, a validation figure or a weight became NaN or infinite: the run stopped,
    and its last good checkpoint (the previous epoch's) is kept."""


def content_digest(data: bytes) -> str:
    """sha256 (hex) of a safetensors file's tensor table, metadata without ``DIGEST_KEY``,
    and body. Raises ValueError on bytes that are not a safetensors file."""
    if len(data) < 8:
        raise ValueError(f"content_digest: expected at least 8 bytes, got {len(data)}")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"content_digest: expected a header of {n} bytes, got a shorter file")
    header = json.loads(data[8 : 8 + n])
    if not isinstance(header, dict):
        raise ValueError(f"content_digest: expected a JSON object header, got {type(header)}")
    meta = dict(header.pop("__metadata__", None) or {})
    meta.pop(DIGEST_KEY, None)
    table = json.dumps({"tensors": header, "metadata": meta}, sort_keys=True).encode()
    h = hashlib.sha256()
    h.update(len(table).to_bytes(8, "little"))
    h.update(table)
    h.update(data[8 + n :])
    return h.hexdigest()


def finite_number(owner: str, name: str, value: object) -> float:
    """``value`` as a float; a bool, a non-number, NaN or ±inf raises naming ``owner``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: expected {name} to be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: expected {name} to be a finite number, got {value}")
    return float(value)


def check_epoch(owner: str, value: object, epochs: int, where: object) -> int:
    """An epoch count in [0, epochs] (the epochs a checkpoint has completed)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}: expected an int epoch in {where}, got {value!r}")
    if not 0 <= value <= epochs:
        raise ValueError(
            f"{owner}: expected the checkpoint's epoch in [0, {epochs}] (the run's epochs) "
            f"in {where}, got {value}"
        )
    return value


def _finite_tensor(owner: str, name: str, t: Tensor, where: object) -> None:
    if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{owner}: expected finite values in {name} of {where}, got {bad} NaN or infinite"
        )


def check_state_dict(
    owner: str, got: object, expected: Mapping[str, Tensor], where: object
) -> dict[str, Tensor]:
    """``got`` must have exactly ``expected``'s keys, each tensor of the same dtype and
    shape, every value finite (a foreign model, a relabelled dtype or NaN is refused)."""
    if not isinstance(got, Mapping):
        raise ValueError(f"{owner}: expected model weights in {where}, got {type(got).__name__}")
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{owner}: expected the weights of this model in {where}, got "
            f"missing {missing[:5]} and unexpected {extra[:5]} (another model's weights?)"
        )
    for key, ref in expected.items():
        t = got[key]
        if not isinstance(t, Tensor):
            raise ValueError(f"{owner}: expected a tensor {key} in {where}, got {type(t).__name__}")
        if t.dtype != ref.dtype or t.shape != ref.shape:
            raise ValueError(
                f"{owner}: expected {key} of dtype {ref.dtype} and shape {tuple(ref.shape)} in "
                f"{where}, got {t.dtype} {tuple(t.shape)}"
            )
        _finite_tensor(owner, key, t, where)
    return dict(got)


def _finite_numbers(owner: str, name: str, value: Any, where: object) -> None:
    if isinstance(value, Tensor):
        _finite_tensor(owner, name, value, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{owner}: expected a finite {name} in {where}, got {value}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _finite_numbers(owner, name, v, where)


def check_optimizer_state(
    owner: str, got: object, opt: torch.optim.Optimizer, where: object
) -> dict[str, Any]:
    """``got`` must be a state_dict of ``opt``'s kind: the same parameter groups, per-
    parameter state of the parameter's shape and dtype (scalars such as ``step`` aside),
    every number finite."""
    fresh = opt.state_dict()
    if not isinstance(got, Mapping) or set(got) != {"state", "param_groups"}:
        raise ValueError(f"{owner}: expected an optimizer state in {where}, got another record")
    groups, state = got["param_groups"], got["state"]
    if not isinstance(groups, list) or len(groups) != len(fresh["param_groups"]):
        raise ValueError(
            f"{owner}: expected {len(fresh['param_groups'])} parameter groups in "
            f"{where}, got another structure"
        )
    for g, f in zip(groups, fresh["param_groups"], strict=True):
        if not isinstance(g, Mapping) or g.get("params") != f["params"]:
            raise ValueError(
                f"{owner}: expected the optimizer's parameters {f['params']} in "
                f"{where}, got another list"
            )
        for k, v in g.items():
            _finite_numbers(owner, f"optimizer {k}", v, where)
    params = [p for group in opt.param_groups for p in group["params"]]
    if not isinstance(state, Mapping):
        raise ValueError(f"{owner}: expected per-parameter optimizer state in {where}")
    for idx, entry in state.items():
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(params):
            raise ValueError(
                f"{owner}: expected optimizer state for parameters 0..{len(params) - 1} in "
                f"{where}, got index {idx!r}"
            )
        if not isinstance(entry, Mapping):
            raise ValueError(f"{owner}: expected a record of optimizer state in {where}")
        p = params[idx]
        for name, v in entry.items():
            mismatch = isinstance(v, Tensor) and (v.shape != p.shape or v.dtype != p.dtype)
            if mismatch and v.numel() != 1:  # scalars such as Adam's step aside
                raise ValueError(
                    f"{owner}: expected optimizer {name} of parameter {idx} with dtype {p.dtype} "
                    f"and shape {tuple(p.shape)} in {where}, got {v.dtype} {tuple(v.shape)}"
                )
            _finite_numbers(owner, f"optimizer {name}", v, where)
    return dict(got)


def check_rng_state(owner: str, got: object, where: object) -> dict[str, Tensor]:
    """torch's CPU generator state: a uint8 tensor of the size torch uses."""
    ref = torch.get_rng_state()
    t = got.get("torch") if isinstance(got, Mapping) else None
    if not isinstance(t, Tensor) or t.dtype != ref.dtype or t.shape != ref.shape:
        raise ValueError(
            f"{owner}: expected a torch RNG state (uint8, {tuple(ref.shape)}) in {where}, got "
            f"{t.dtype if isinstance(t, Tensor) else type(t).__name__}"
        )
    return {"torch": t}
