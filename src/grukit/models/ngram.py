"""Count-based character language models: the baselines a recurrent LM has to beat.

Both models read token ids (S,) over a known vocabulary of V tokens and score a held-out
stream the way ``grukit.training.lm.evaluate`` scores the recurrent LM: every token after the
first, each predicted from the tokens before it in the SAME stream (the held-out text is read
on its own; its first tokens have shorter histories, the n-gram uses what it has). NumPy only.

``UnigramLM`` — add-one (Laplace) smoothing over the vocabulary:

    P(w) = (c(w) + 1) / (S + V)

The vocabulary is known (V tokens), so add-one is the proper Bayesian estimate under a
uniform Dirichlet prior, gives every token probability > 0, and needs no tuned floor.

``KneserNeyLM(order)`` — interpolated Kneser-Ney (Chen & Goodman 1998, "An empirical study of
smoothing techniques for language modeling", TR-10-98, §3.5/§4.1.6), interpolated at the
bottom with the uniform distribution over the vocabulary so every token has P > 0. For the
history h = w_{t−k+1} … w_{t−1} (k − 1 tokens, k ≤ order) and h' = h without its first token:

    P_k(w | h) = ( max(a_k(h w) − D_k(a_k(h w)), 0) + γ_k(h) · P_{k−1}(w | h') ) / A_k(h)
    A_k(h)     = Σ_w a_k(h w),   γ_k(h) = Σ_{w: a_k(h w) > 0} D_k(a_k(h w))
    P_k(w | h) = P_{k−1}(w | h')        when A_k(h) = 0 (a history never seen at this level)
    P_0(w)     = 1 / V

with the counts a_k: the raw counts c(h w) at the top level k = order, and continuation
counts N1+(• h w) = the number of distinct tokens seen before the k-gram h w at every lower
level (Kneser & Ney 1995). Discounts per level from that level's count-of-counts n_r (the
number of k-grams with a_k = r), as KenLM does:

    discount="modified" (default; Chen & Goodman's "modified Kneser-Ney", the variant they
                        found best): D_k(1) = 1 − 2Y n2/n1, D_k(2) = 2 − 3Y n3/n2,
                        D_k(a ≥ 3) = 3 − 4Y n4/n3, with Y = n1 / (n1 + 2 n2)
    discount="single"   (Chen & Goodman's "interpolated Kneser-Ney"): D_k(a) = Y for all a
    discount=D          a fixed D in (0, 1] at every level (D = 0.75 is the textbook value)

A discount the count-of-counts cannot give (a zero denominator, or a value outside (0, a] —
(0, 1] for "single") falls back to Y, or to 0.5 when Y itself is undefined. This happens at
the unigram level of a character model, where every letter follows many distinct letters
(n1 = 0), and on tiny texts; it hardly matters there since every count is large.

On The Time Machine (d2l's split: 153,522 training tokens, the last 17,058 held out, V = 28)
the validation perplexities are, for orders 5 / 6 / 7: modified 4.371 / 4.201 / 4.180,
single 4.457 / 4.329 / 4.330, fixed D = 0.75 4.410 / 4.275 / 4.310 (``benchmarks/ngram.py``).

A history shorter than order − 1 (the first tokens of a stream) is scored by the recursion
from its own length down, i.e. with the lower levels' continuation counts. (Continuing the
history from the end of the training text instead changes the book's figures by < 0.001.)

Implementation: a k-gram is the int64 key Σ_j w_j · V^(k−1−j) (first token most significant),
so a history's k-grams are contiguous in the sorted keys and the history's key is key // V;
the tables are np.unique with counts, lookups are np.searchsorted. Fitting order 8 on The
Time Machine (153k tokens, V = 28) takes well under a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DISCOUNTS",
    "Discount",
    "KneserNeyLM",
    "UnigramLM",
    "best_kneser_ney",
    "holdout_perplexities",
    "lm_baselines",
]

DISCOUNTS = ("single", "modified")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: "single" | "modified" (from the count-of-counts) or a fixed discount D in (0, 1].
Discount = Literal["single", "modified"] | float


def _as_ids(owner: str, tokens: npt.ArrayLike, vocab_size: int, *, min_len: int) -> IntArray:
    """``tokens`` as a 1-D int64 array of ids in [0, vocab_size), at least min_len long."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{owner}: expected token ids of shape (S,), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{owner}: expected integer token ids, got dtype {arr.dtype}")
    if arr.size < min_len:
        raise ValueError(f"{owner}: expected at least {min_len} tokens, got {arr.size}")
    ids = arr.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{owner}: expected token ids in [0, {vocab_size}), "
            f"got values in [{ids.min()}, {ids.max()}]"
        )
    return ids


def _check_vocab_size(owner: str, vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise TypeError(f"{owner}: expected an int vocab_size, got {type(vocab_size).__name__}")
    if vocab_size < 1:
        raise ValueError(f"{owner}: expected vocab_size ≥ 1, got {vocab_size}")


def _perplexity(log_probs: FloatArray) -> float:
    """exp(−mean log p); +inf past float64's range."""
    nll = -float(np.mean(log_probs))
    return math.exp(nll) if nll < 709.0 else float("inf")


#: Tokens scored at once by ``perplexity``: bounds its memory on any length of text.
CHUNK = 1 << 18


def _stream_perplexity(
    log_prob: Callable[[npt.ArrayLike], FloatArray], ids: npt.ArrayLike, context: int
) -> float:
    """exp(−mean log p) of every token after the first of the stream ``ids`` (S,), scored
    CHUNK tokens at a time: the chunk [s, e) is read with the ``context`` tokens before it,
    whose own predictions are dropped, so every token keeps its full history."""
    ids = np.asarray(ids)
    if ids.size <= CHUNK + 1:
        return _perplexity(log_prob(ids))
    total, count = 0.0, 0
    for s in range(1, ids.size, CHUNK):
        a, e = max(s - 1 - context, 0), min(s + CHUNK, ids.size)  # read ids[a:e]
        lp = log_prob(ids[a:e])[-(e - s) :]  # predictions of positions s … e − 1
        total, count = total + float(lp.sum()), count + lp.size
    nll = -total / count
    return math.exp(nll) if nll < 709.0 else float("inf")


class UnigramLM:
    """Add-one (Laplace) unigram: P(w) = (c(w) + 1) / (S + V), the same for every position."""

    def __init__(self, vocab_size: int) -> None:
        _check_vocab_size("UnigramLM", vocab_size)
        self.vocab_size = int(vocab_size)
        self.probs: FloatArray | None = None  # (V,) after fit

    def fit(self, tokens: npt.ArrayLike) -> UnigramLM:
        """Count the token ids (S,), S ≥ 1."""
        ids = _as_ids("UnigramLM.fit", tokens, self.vocab_size, min_len=1)
        counts = np.bincount(ids, minlength=self.vocab_size).astype(np.float64)  # (V,)
        self.probs = (counts + 1.0) / (ids.size + self.vocab_size)
        return self

    def _fitted(self) -> FloatArray:
        if self.probs is None:
            raise ValueError("UnigramLM: expected a fitted model (call fit first), got none")
        return self.probs

    def prob_table(self, context: Sequence[int] = ()) -> FloatArray:
        """P(· | context) (V,); the context is ignored."""
        return np.array(self._fitted(), dtype=np.float64)  # a copy

    def log_prob(self, tokens: npt.ArrayLike) -> FloatArray:
        """log P(tokens[t]) for t = 1 … S−1: (S−1,) — the targets the recurrent LM scores."""
        ids = _as_ids("UnigramLM.log_prob", tokens, self.vocab_size, min_len=2)
        return np.log(self._fitted()[ids[1:]])

    def perplexity(self, tokens: npt.ArrayLike) -> float:
        """exp(−mean log_prob(tokens)) over tokens[1:] of the stream (S,), in bounded memory."""
        return _stream_perplexity(self.log_prob, tokens, 0)


@dataclass(frozen=True)
class _Level:
    """The table of level k: sorted k-gram keys with their counts a and discounts d, and the
    sorted histories (keys // V) with A = Σ a and γ = Σ d over their k-grams."""

    keys: IntArray  # (G,) sorted unique k-gram keys
    counts: FloatArray  # (G,) a_k
    discounts: FloatArray  # (G,) D_k(a_k)
    hist_keys: IntArray  # (H,) sorted unique history keys
    hist_total: FloatArray  # (H,) A_k(h)
    hist_gamma: FloatArray  # (H,) γ_k(h)
    discount_table: tuple[float, float, float]  # D_k(1), D_k(2), D_k(≥3)


def _lookup(keys: IntArray, query: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """(index, found) of ``query`` (M,) in the sorted ``keys`` (G,)."""
    if keys.size == 0:
        return np.zeros(query.shape, np.int64), np.zeros(query.shape, bool)
    idx = np.minimum(np.searchsorted(keys, query), keys.size - 1)  # (M,)
    return idx, keys[idx] == query


def _discount_table(counts: IntArray, variant: Discount) -> tuple[float, float, float]:
    """(D(1), D(2), D(≥3)) from the count-of-counts of ``counts`` (Chen & Goodman 1998), or
    the fixed discount ``variant`` when it is a number."""
    if not isinstance(variant, str):
        return float(variant), float(variant), float(variant)
    n = [int(np.count_nonzero(counts == r)) for r in range(5)]  # n[r], r = 0 … 4
    y = n[1] / (n[1] + 2 * n[2]) if n[1] > 0 else math.nan
    if variant == "single":
        raw = [y, y, y]
    else:
        raw = [
            1 - 2 * y * n[2] / n[1] if n[1] > 0 else math.nan,
            2 - 3 * y * n[3] / n[2] if n[2] > 0 else math.nan,
            3 - 4 * y * n[4] / n[3] if n[3] > 0 else math.nan,
        ]
    # a discount must lie in (0, a] (single: (0, 1]); degenerate count-of-counts fall back
    fallback = y if 0.0 < y <= 1.0 else 0.5
    table = [
        d if 0.0 < d <= (1 if variant == "single" else r) else fallback
        for r, d in zip((1, 2, 3), raw, strict=True)
    ]
    return table[0], table[1], table[2]


def _ngram_keys(ids: IntArray, k: int, vocab_size: int) -> IntArray:
    """Keys of every k-gram of ``ids`` (S,): (S − k + 1,)."""
    keys = np.zeros(ids.size - k + 1, np.int64)
    for j in range(k):
        keys = keys * vocab_size + ids[j : ids.size - k + 1 + j]
    return keys


class KneserNeyLM:
    """Interpolated Kneser-Ney character n-gram (module docstring: formulas and variants).

    Args:
        order: n ≥ 1, the longest k-gram (history of n − 1 tokens). order=1 is absolute
            discounting of the unigram counts interpolated with the uniform distribution.
        vocab_size: V.
        discount: "modified" (default: three discounts per level, the stronger baseline),
            "single" (interpolated KN, one D per level), or a number: that D everywhere.
    """

    def __init__(self, order: int, vocab_size: int, *, discount: Discount = "modified") -> None:
        _check_vocab_size("KneserNeyLM", vocab_size)
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"KneserNeyLM: expected an int order ≥ 1, got {order!r}")
        fixed = isinstance(discount, float | int) and not isinstance(discount, bool)
        if not (discount in DISCOUNTS if isinstance(discount, str) else fixed):
            raise ValueError(
                f"KneserNeyLM: expected discount in {DISCOUNTS} or a number in (0, 1], "
                f"got {discount!r}"
            )
        if fixed and not 0.0 < float(discount) <= 1.0:
            raise ValueError(f"KneserNeyLM: expected a fixed discount in (0, 1], got {discount}")
        if float(vocab_size) ** order >= 2.0**62:
            raise ValueError(
                f"KneserNeyLM: expected vocab_size ** order < 2**62 (int64 keys), got "
                f"{vocab_size} ** {order}"
            )
        self.order, self.vocab_size, self.discount = order, int(vocab_size), discount
        self.levels: list[_Level] = []  # levels[k − 1] is level k, after fit

    def fit(self, tokens: npt.ArrayLike) -> KneserNeyLM:
        """Count the token ids (S,), S ≥ order."""
        ids = _as_ids("KneserNeyLM.fit", tokens, self.vocab_size, min_len=self.order)
        n, v = self.order, self.vocab_size
        levels: list[_Level] = []
        above: IntArray | None = None  # unique (k+1)-gram keys of the level above
        for k in range(n, 0, -1):
            if above is None:  # top level: raw counts
                keys, raw = np.unique(_ngram_keys(ids, k, v), return_counts=True)
            else:  # continuation counts: distinct left neighbours = (k+1)-grams per suffix
                keys, raw = np.unique(above % v**k, return_counts=True)
            keys, raw = keys.astype(np.int64), raw.astype(np.int64)  # (G,)
            table = _discount_table(raw, self.discount)
            disc = np.asarray(table, np.float64)[np.minimum(raw, 3) - 1]  # (G,)
            hist_all = keys // v  # (G,) non-decreasing: a history's k-grams are contiguous
            starts = np.flatnonzero(np.r_[True, hist_all[1:] != hist_all[:-1]])  # (H,)
            levels.append(
                _Level(
                    keys=keys,
                    counts=raw.astype(np.float64),
                    discounts=disc,
                    hist_keys=hist_all[starts],
                    hist_total=np.add.reduceat(raw.astype(np.float64), starts),
                    hist_gamma=np.add.reduceat(disc, starts),
                    discount_table=table,
                )
            )
            above = keys
        self.levels = levels[::-1]
        return self

    def _fitted(self) -> list[_Level]:
        if not self.levels:
            raise ValueError("KneserNeyLM: expected a fitted model (call fit first), got none")
        return self.levels

    def _probs(self, history: IntArray, target: IntArray) -> FloatArray:
        """P(target | history) (M,) for histories (M, n − 1) left-padded with −1."""
        levels, v = self._fitted(), self.vocab_size
        prob = np.full(target.shape, 1.0 / v)  # (M,) P_0
        gram = target.copy()  # (M,) key of the k-gram h w
        hist = np.zeros(target.shape, np.int64)  # (M,) key of its history h
        valid = np.ones(target.shape, bool)  # (M,) the history has k − 1 real tokens
        for k, level in enumerate(levels, start=1):
            if k > 1:
                tok = history[:, -(k - 1)]  # (M,) the token k − 1 places back
                valid &= tok >= 0
                gram = gram + np.maximum(tok, 0) * v ** (k - 1)
                hist = hist + np.maximum(tok, 0) * v ** (k - 2)
            h_idx, h_found = _lookup(level.hist_keys, hist)
            g_idx, g_found = _lookup(level.keys, gram)
            a = np.where(g_found, level.counts[g_idx], 0.0)  # (M,)
            d = np.where(g_found, level.discounts[g_idx], 0.0)  # (M,)
            seen = valid & h_found
            total = np.where(seen, level.hist_total[h_idx], 1.0)  # (M,)
            gamma = level.hist_gamma[h_idx]  # (M,)
            prob = np.where(seen, (np.maximum(a - d, 0.0) + gamma * prob) / total, prob)
        return prob

    def prob_table(self, context: Sequence[int] = ()) -> FloatArray:
        """P(· | context) over the vocabulary (V,); the last order − 1 tokens of context count."""
        n, v = self.order, self.vocab_size
        ctx = _as_ids("KneserNeyLM.prob_table", list(context), v, min_len=0)
        ctx = ctx[max(ctx.size - (n - 1), 0) :] if n > 1 else ctx[:0]  # the last n − 1
        history = np.full((v, n - 1), -1, np.int64)  # (V, n − 1)
        if ctx.size:
            history[:, n - 1 - ctx.size :] = ctx
        return self._probs(history, np.arange(v, dtype=np.int64))

    def log_prob(self, tokens: npt.ArrayLike) -> FloatArray:
        """log P(tokens[t] | tokens[max(0, t−n+1) : t]) for t = 1 … S−1: (S−1,)."""
        n = self.order
        ids = _as_ids("KneserNeyLM.log_prob", tokens, self.vocab_size, min_len=2)
        padded = np.r_[np.full(n - 1, -1, np.int64), ids]  # (S + n − 1,)
        t = np.arange(1, ids.size)  # (S−1,) target positions in ids
        history = padded[t[:, None] + np.arange(n - 1)]  # (S−1, n − 1): ids[t−n+1 : t]
        return np.log(self._probs(history, ids[1:]))

    def perplexity(self, tokens: npt.ArrayLike) -> float:
        """exp(−mean log_prob(tokens)) over tokens[1:] of the stream (S,), in bounded memory."""
        return _stream_perplexity(self.log_prob, tokens, self.order - 1)


def holdout_perplexities(
    train_ids: npt.ArrayLike,
    vocab_size: int,
    orders: Iterable[int] = range(2, 9),
    holdout_fraction: float = 0.1,
    *,
    discount: Discount = "modified",
) -> dict[int, float]:
    """{order: perplexity on the last holdout_fraction of train_ids (S,) of the model fitted
    on the first 1 − holdout_fraction}. Only train_ids are read."""
    _check_vocab_size("holdout_perplexities", vocab_size)
    ids = _as_ids("holdout_perplexities", train_ids, vocab_size, min_len=4)
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(
            f"holdout_perplexities: expected holdout_fraction in (0, 1), got {holdout_fraction}"
        )
    order_list = list(orders)
    if not order_list:
        raise ValueError("holdout_perplexities: expected at least one order, got none")
    n_hold = max(2, int(round(ids.size * holdout_fraction)))
    fit_part, hold_part = ids[: ids.size - n_hold], ids[ids.size - n_hold :]
    if fit_part.size < max(order_list):
        raise ValueError(
            f"holdout_perplexities: expected at least {max(order_list)} tokens to fit on, "
            f"got {fit_part.size} ({ids.size} − {n_hold} held out)"
        )
    return {
        n: KneserNeyLM(n, vocab_size, discount=discount).fit(fit_part).perplexity(hold_part)
        for n in order_list
    }


def best_kneser_ney(
    train_ids: npt.ArrayLike,
    vocab_size: int,
    orders: Iterable[int] = range(2, 9),
    holdout_fraction: float = 0.1,
    *,
    discount: Discount = "modified",
) -> tuple[int, KneserNeyLM]:
    """(order, model): the order with the lowest ``holdout_perplexities`` (ties: the smaller),
    refitted on all of ``train_ids`` (S,). Only train_ids are read."""
    scores = holdout_perplexities(
        train_ids, vocab_size, orders, holdout_fraction, discount=discount
    )
    best = min(scores, key=lambda n: (scores[n], n))
    return best, KneserNeyLM(best, vocab_size, discount=discount).fit(train_ids)


def lm_baselines(
    train_ids: npt.ArrayLike,
    val_ids: npt.ArrayLike,
    vocab_size: int,
    *,
    orders: Iterable[int] = range(2, 9),
    holdout_fraction: float = 0.1,
    discount: Discount = "modified",
    max_train_tokens: int = 8_000_000,
) -> dict[str, Any]:
    """Validation perplexities of the count baselines, for summary.json (JSON-ready):
    ``{"unigram": {...}, "kneser_ney": {"val_perplexity", "order", "discount",
    "holdout_perplexity": {order: ...}}, "seconds": fit and evaluation time}``.

    The unigram and the KN n-gram are fitted on ``train_ids`` (S,) only (the KN order chosen
    on its last ``holdout_fraction``) and score ``val_ids`` (S_val,) as one stream, every
    token after the first, as ``grukit.training.lm.evaluate`` does. Counting keeps a few
    int64 arrays per training token: past ``max_train_tokens`` the models are fitted on the
    last that many ("train_tokens" says how many were used); scoring is bounded at any size.
    """
    start = time.perf_counter()
    train_ids = np.asarray(train_ids)[-max_train_tokens:]
    unigram = UnigramLM(vocab_size).fit(train_ids)
    holdout = holdout_perplexities(
        train_ids, vocab_size, orders, holdout_fraction, discount=discount
    )
    order = min(holdout, key=lambda n: (holdout[n], n))
    kn = KneserNeyLM(order, vocab_size, discount=discount).fit(train_ids)
    return {
        "unigram": {"val_perplexity": unigram.perplexity(val_ids), "smoothing": "add-one"},
        "kneser_ney": {
            "val_perplexity": kn.perplexity(val_ids),
            "order": order,
            "discount": kn.discount,
            "holdout_perplexity": {str(n): p for n, p in holdout.items()},
        },
        "train_tokens": int(train_ids.size),
        "seconds": time.perf_counter() - start,
    }
