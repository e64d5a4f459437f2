"""Optional dependencies, imported where they are used and named when they are missing.

``pip install grukit`` brings what the layers need (torch, numpy, safetensors, ninja for
the native kernel). Plots and progress bars need matplotlib and tqdm, which come with
the ``cli`` extra; code that uses them imports them through ``require``, so a missing
one says which extra to install instead of failing at ``import grukit``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message says which extra brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import and return ``module``; if it (or its top-level package) is not installed,
    raise ``MissingExtraError`` naming ``what`` needs it and ``pip install 'grukit[extra]'``.

    Errors raised while importing an installed module (a broken install, a missing
    dependency of its own) propagate unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is None or err.name.split(".")[0] != top:
            raise
        raise MissingExtraError(
            f"{what} needs {top}, which is not installed: pip install 'grukit[{extra}]'",
            name=err.name,
        ) from err
