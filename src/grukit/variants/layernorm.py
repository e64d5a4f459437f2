"""LayerNormGRU: a GRU whose input and recurrent projections are layer-normalised.

Ba et al. 2016 ("Layer Normalization", arXiv:1607.06450) and haste's LayerNormGRU; the
cell is ``grukit.functional.layernorm_gru_cell``. Everything else — arguments, shapes,
packed and unbatched input, h0, layers, directions, ``reset_after``, ``recurrent_dropout``
and ``zoneout`` — is ``grukit.GRU``'s (``grukit.layers.RNNBase``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers import RNNBase

__all__ = ["LayerNormGRU"]


class LayerNormGRU(RNNBase[Tensor]):
    r"""Multi-layer layer-normalised GRU (Ba et al. 2016; haste's LayerNormGRU).

    Each layer computes, per step (gate order r, z, n as ``torch.nn.GRU``):

    .. math::
        g_i &= \mathrm{LN}(W_{ih} x_t; \gamma_{ih}) + b_{ih}, \qquad
        g_h = \mathrm{LN}(W_{hh} h_{t-1}; \gamma_{hh}) + b_{hh} \\
        r_t &= \sigma(g_{i,r} + g_{h,r}), \quad z_t = \sigma(g_{i,z} + g_{h,z}) \\
        n_t &= \tanh(g_{i,n} + r_t \odot g_{h,n}) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    LN normalises each row over its 3H features (mean and biased variance, ε = 1e-5) and
    multiplies by a gain γ (3H,), initialised to ones; the biases are the shift. With
    ``reset_after=False`` the n rows are :math:`\mathrm{LN}(W_{hn}(r_t \odot h_{t-1}))`,
    normalised apart from the r, z rows (see ``grukit.functional.layernorm_gru_cell``).

    Parameters per layer k (``_reverse`` for the second direction), torch's names plus the
    gains: ``weight_ih_lk`` (3H, I), ``weight_hh_lk`` (3H, H), ``bias_ih_lk``,
    ``bias_hh_lk`` (3H,) when ``bias``, ``ln_weight_ih_lk``, ``ln_weight_hh_lk`` (3H,).
    Arguments, shapes and returns are ``grukit.GRU``'s.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__(
            "layernorm_gru",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            reset_after=reset_after,
            backend=backend,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )
