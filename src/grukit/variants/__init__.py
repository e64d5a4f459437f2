"""Recurrent layers beyond ``torch.nn``: LayerNormGRU (and, on GRU and LayerNormGRU,
recurrent dropout and zoneout, see ``grukit.layers``), and MinGRU (parallel scan)."""

from .layernorm import LayerNormGRU
from .mingru import MinGRU

__all__ = ["LayerNormGRU", "MinGRU"]
