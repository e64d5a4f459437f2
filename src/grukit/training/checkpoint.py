"""Safe files: atomic writes, JSON, and checkpoints as a single safetensors file.

Nothing here is pickled, so loading a file never runs code. A checkpoint holds any
nested structure of dicts, lists, tuples, strings, numbers, None and tensors: the
tensors go into the safetensors body, the structure (as JSON, tensors replaced by
references) into the safetensors header's metadata. One file, written atomically
(temporary file, fsync, rename), so a crash leaves the old checkpoint or the new
one, never half of either. Files are created with the mode the umask allows (as ``open``
would), and a target that is not a regular file (a FIFO, a device, a folder) is refused.

Every safetensors file written here carries a content digest in its header metadata
(``integrity.content_digest``: tensor table, metadata and body); loading verifies it, so
a flipped bit, a relabelled dtype or a truncated file is refused, never loaded.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .integrity import DIGEST_KEY, content_digest

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
    "umask",
]

_META_KEY = "grukit.state"


def umask() -> int:
    """The process's umask (read from /proc where it can be, else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK:
          "a block device", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}  # fmt: skip


def check_writable_target(path: str | os.PathLike[str], *, follow_links: bool = True) -> None:
    """Refuse a ``path`` that exists and is not a regular file (or, with
    ``follow_links=False``, that is a symbolic link)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        if not follow_links:
            raise ValueError(f"atomic_write: expected {path} to be a regular file, got a link")
        return  # replaced by the rename, not followed
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ValueError(
            f"atomic_write: expected {path} to be a regular file or absent, got {kind}"
        )


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    The file gets mode 0o666 less the umask; an existing ``path`` that is not a regular
    file (or a link, which is replaced, not followed) raises ValueError."""
    path = Path(path)
    check_writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a folder, so a rename or a new entry in it survives a crash."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def _loads(text: bytes | str, what: str, where: object) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"expected {what} {where} to hold valid JSON, got: {err}") from None
    except RecursionError:
        raise ValueError(f"expected {what} {where} to hold JSON, got nesting too deep") from None


def read_json(path: str | os.PathLike[str], *, what: str = "JSON file") -> Any:
    """Read JSON; a missing file raises FileNotFoundError, a bad one ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}, found none")
    return _loads(path.read_bytes(), what, path)


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
    """(tensors, header metadata) of a safetensors file written here, its content digest
    verified; errors name the file."""
    data = path.read_bytes()
    try:
        digest = content_digest(data)
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"expected {what} in {path}, got an unreadable file ({err})") from None
    if meta.get(DIGEST_KEY) is None:
        raise ValueError(
            f"expected {what} in {path} with a content digest ({DIGEST_KEY}), got none "
            "(written by another tool or an older grukit)"
        )
    if meta[DIGEST_KEY] != digest:
        raise ValueError(
            f"expected {what} in {path} to match its content digest, got different content "
            "(the file is damaged or was edited)"
        )
    return tensors, meta


def _save_with_digest(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    digest = content_digest(st_save(tensors, metadata=metadata))
    atomic_write(path, st_save(tensors, metadata={**metadata, DIGEST_KEY: digest}))


def save_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Save a nested structure holding tensors as one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _pack(state, tensors)
    _save_with_digest(path, tensors, {_META_KEY: json.dumps(skeleton, allow_nan=False)})


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load what ``save_state`` wrote; a missing file raises FileNotFoundError, a
    corrupt or foreign one ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a checkpoint at {path}, found none")
    tensors, meta = _read_safetensors(path, "a grukit checkpoint")
    try:
        state = _unpack(json.loads(meta[_META_KEY]), tensors)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(
            f"expected a grukit checkpoint in {path}, got a foreign header ({err!r})"
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
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> None:
    """A model's weights as a plain safetensors file (readable by any safetensors tool),
    with its config as JSON in the header metadata under "config"; atomic."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    _save_with_digest(path, tensors, {"config": json.dumps(dict(config), allow_nan=False)})


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, config) from ``save_weights``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected model weights at {path}, found none")
    tensors, meta = _read_safetensors(path, "safetensors model weights")
    config = _loads(meta.get("config", "{}"), "the config in the header of", path)
    if not isinstance(config, dict):
        raise ValueError(f"expected a config object in {path}, got {type(config).__name__}")
    return tensors, config
