"""Safe files: atomic writes, JSON, and checkpoints as a single safetensors file.

Nothing here is pickled, so loading a file never runs code. A checkpoint holds any
nested structure of dicts, lists, tuples, strings, numbers, None and tensors: the
tensors go into the safetensors body, the structure (as JSON, tensors replaced by
references) into the safetensors header's metadata. One file, written atomically
(temporary file, fsync, rename), so a crash leaves the old checkpoint or the new
one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = [
    "atomic_write",
    "write_json",
    "read_json",
    "save_state",
    "load_state",
    "rng_state",
    "set_rng_state",
    "save_weights",
    "load_weights",
]

_META_KEY = "grukit.state"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Read JSON; a missing file raises FileNotFoundError, a bad one ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}, found none")
    text = path.read_bytes()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"expected {what} {path} to hold valid JSON, got: {err}") from None


def _pack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor by {"__tensor__": key}; dicts become key/value pair lists
    (their keys may be ints, as in optimizer state)."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        return {"__dict__": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save_state: expected tensors, containers or plain values, got {type(obj)}")


def _unpack(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["__dict__"]}
        raise ValueError(f"load_state: unexpected record {sorted(obj)} in the checkpoint header")
    return obj


def _read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; errors name the file."""
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"expected {what} in {path}, got an unreadable file ({err})") from None
    return tensors, meta


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Save a nested structure holding tensors as one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _pack(state, tensors)
    atomic_write(path, st_save(tensors, metadata={_META_KEY: json.dumps(skeleton)}))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load what ``save_state`` wrote; a missing file raises FileNotFoundError, a
    corrupt or foreign one ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a checkpoint at {path}, found none")
    tensors, meta = _read_safetensors(path, "a grukit checkpoint")
    try:
        state = _unpack(json.loads(meta[_META_KEY]), tensors)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"expected a grukit checkpoint in {path}, got a foreign header ({err})"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"expected a grukit checkpoint in {path}, got {type(state).__name__}")
    return state


def rng_state() -> dict[str, Any]:
    """The random generators a CPU training run draws from (torch's CPU generator)."""
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])


def save_weights(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> None:
    """A model's weights as a plain safetensors file (readable by any safetensors tool),
    with its config as JSON in the header metadata under "config"; atomic."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    atomic_write(path, st_save(tensors, metadata={"config": json.dumps(dict(config))}))


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, config) from ``save_weights``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected model weights at {path}, found none")
    tensors, meta = _read_safetensors(path, "safetensors model weights")
    try:
        config = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON config in the header of {path}, got: {err}") from None
    return tensors, config
