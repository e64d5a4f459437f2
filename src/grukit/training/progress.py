"""Progress bars for long work: rate, ETA and live figures, on stderr.

tqdm comes with the ``cli`` extra (``pip install 'grukit[cli]'``) and is imported on
first use.
"""

from __future__ import annotations

import sys
from typing import Any

from .._extras import require

__all__ = ["progress"]


def progress(
    total: int | None, desc: str, *, unit: str = "it", disable: bool = False, **kw: Any
) -> Any:
    """A tqdm bar showing count, rate and ETA; update it with ``bar.update(n)`` and
    live figures with ``bar.set_postfix(ppl=…)``. ``disable`` silences it (tests)."""
    tqdm = require("tqdm.auto", "cli", "grukit.training.progress").tqdm
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=disable,
        leave=True,
        **kw,
    )
