"""Recurrent layers beyond ``torch.nn``: LayerNormGRU (and, on GRU and LayerNormGRU,
recurrent dropout and zoneout, see ``grukit.layers``)."""

from .layernorm import LayerNormGRU

__all__ = ["LayerNormGRU"]
