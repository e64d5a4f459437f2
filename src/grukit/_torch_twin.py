"""``from_torch`` / ``to_torch`` for grukit's layers and cells (``grukit.interop.torch_nn``)."""

from __future__ import annotations

from typing import TypeVar

from torch import nn

Twin = TypeVar("Twin", bound="TorchTwin")


class TorchTwin:
    """Conversion to and from the ``torch.nn`` module computing the same function."""

    @classmethod
    def from_torch(cls: type[Twin], module: nn.Module, *, backend: str = "auto") -> Twin:
        """The grukit module equal to ``module`` (``torch.nn.GRU``/``RNN``/``LSTM`` or a cell):
        same constructor arguments, a copy of its weights (``grukit.interop.from_torch``)."""
        from .interop.torch_nn import from_torch

        twin = from_torch(module, backend=backend)
        if not isinstance(twin, cls):
            raise TypeError(
                f"{cls.__name__}.from_torch: expected a torch.nn.{cls.__name__}, "
                f"got {type(module).__name__}"
            )
        return twin

    def to_torch(self) -> nn.Module:
        """The ``torch.nn`` module equal to this one, with a copy of its weights; raises
        ValueError for the GRU with reset_after=False, which torch does not have."""
        from .interop.torch_nn import to_torch

        return to_torch(self)
