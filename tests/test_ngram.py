"""Count baselines (grukit.models.ngram) against hand computations and a slow pure-Python
reference of the same formulas (float64; tolerances stated per test)."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from grukit.models import ngram
from grukit.models.ngram import (
    Discount,
    KneserNeyLM,
    UnigramLM,
    best_kneser_ney,
    holdout_perplexities,
    lm_baselines,
)

# a=0 b=1 r=2 c=3 d=4, and e=5 never occurs
TOY = np.array([0, 1, 2, 0, 3, 0, 4, 0, 1, 2])  # "abracadabr", 10 characters
V_TOY = 6


def test_unigram_is_add_one_by_hand() -> None:
    lm = UnigramLM(V_TOY).fit(TOY)
    # counts a4 b2 r2 c1 d1 e0, S = 10, V = 6: (c + 1) / 16
    want = np.array([5, 3, 3, 2, 2, 1]) / 16
    np.testing.assert_allclose(lm.prob_table(), want, rtol=0, atol=1e-15)
    # the first token is context only; log P of e, then a
    np.testing.assert_allclose(lm.log_prob([1, 5, 0]), np.log([1 / 16, 5 / 16]), atol=1e-15)
    assert lm.perplexity([1, 5, 0]) == pytest.approx(math.sqrt(16 * 16 / 5), rel=1e-12)


# Interpolated KN bigram of TOY by hand (single discount):
# level 2 (raw): ab 2, br 2, ra 1, ac 1, ca 1, ad 1, da 1 → n1 = 5, n2 = 2, D = 5/9
# level 1 (continuation N1+(• w)): a 3 (ra ca da), b 1, r 1, c 1, d 1, e 0 → total 7,
#   n1 = 4, n2 = 0, D = 1, γ = 5:  P1(a) = (3 − 1 + 5/6)/7 = 17/42, P1(other) = 5/42
# history a: ab 2, ac 1, ad 1 → A = 4, γ = 3 · 5/9 = 5/3
#   P(b|a) = (2 − 5/9 + 5/3 · 5/42)/4 = 23/56, P(c|a) = P(d|a) = (1 − 5/9 + 25/126)/4 = 9/56,
#   P(a|a) = (5/3 · 17/42)/4 = 85/504, P(r|a) = P(e|a) = 25/504
# history b: br 2 → A = 2, γ = 5/9: P(r|b) = (2 − 5/9 + 5/9 · 5/42)/2 = 571/756,
#   P(a|b) = 5/9 · 17/42 / 2 = 85/756, P(b|b) = P(c|b) = P(d|b) = P(e|b) = 25/756
# history r: ra 1 → A = 1, γ = 5/9: P(a|r) = 4/9 + 5/9 · 17/42 = 253/378, others 25/378
# history e (never seen): P1
F = Fraction
P1 = [F(17, 42)] + [F(5, 42)] * 5
BY_HAND = {
    (0,): [F(85, 504), F(23, 56), F(25, 504), F(9, 56), F(9, 56), F(25, 504)],
    (1,): [F(85, 756), F(25, 756), F(571, 756), F(25, 756), F(25, 756), F(25, 756)],
    (2,): [F(253, 378)] + [F(25, 378)] * 5,
    (5,): P1,
    (): P1,
}


@pytest.mark.parametrize("context", list(BY_HAND))
def test_kneser_ney_bigram_by_hand(context: tuple[int, ...]) -> None:
    lm = KneserNeyLM(2, V_TOY, discount="single").fit(TOY)
    assert [lv.discount_table[0] for lv in lm.levels] == pytest.approx([1.0, 5 / 9], abs=1e-15)
    want = np.array([float(p) for p in BY_HAND[context]])
    assert sum(BY_HAND[context]) == 1
    np.testing.assert_allclose(lm.prob_table(context), want, rtol=0, atol=1e-12)


def test_kneser_ney_bigram_log_prob_by_hand() -> None:
    lm = KneserNeyLM(2, V_TOY, discount="single").fit(TOY)
    want = np.log([23 / 56, 571 / 756, 25 / 378])  # P(b|a), P(r|b), P(e|r)
    np.testing.assert_allclose(lm.log_prob([0, 1, 2, 5]), want, rtol=0, atol=1e-12)
    assert lm.perplexity([0, 1, 2, 5]) == pytest.approx(math.exp(-want.mean()), rel=1e-12)


# ------------------------------------------------------------- a slow pure-Python reference


def _ref_discounts(counts: dict[tuple[int, ...], int], variant: str | float) -> list[float]:
    if not isinstance(variant, str):
        return [float(variant)] * 3
    n = Counter(counts.values())
    y = n[1] / (n[1] + 2 * n[2]) if n[1] > 0 else math.nan
    if variant == "single":
        raw, top = [y, y, y], [1, 1, 1]
    else:
        raw = [
            1 - 2 * y * n[2] / n[1] if n[1] > 0 else math.nan,
            2 - 3 * y * n[3] / n[2] if n[2] > 0 else math.nan,
            3 - 4 * y * n[4] / n[3] if n[3] > 0 else math.nan,
        ]
        top = [1, 2, 3]
    fallback = y if 0 < y <= 1 else 0.5
    return [d if 0 < d <= t else fallback for d, t in zip(raw, top, strict=True)]


class RefKN:
    """Interpolated Kneser-Ney with dicts and recursion, straight from the formula."""

    def __init__(self, order: int, vocab_size: int, text: list[int], variant: str | float):
        self.n, self.v = order, vocab_size
        top = Counter(tuple(text[i : i + order]) for i in range(len(text) - order + 1))
        self.counts = {order: dict(top)}
        for k in range(order - 1, 0, -1):  # N1+(• g): distinct (k+1)-gram types ending in g
            self.counts[k] = dict(Counter(g[1:] for g in self.counts[k + 1]))
        self.disc = {k: _ref_discounts(c, variant) for k, c in self.counts.items()}

    def prob(self, w: int, hist: tuple[int, ...]) -> float:
        k = len(hist) + 1
        lower = 1.0 / self.v if k == 1 else self.prob(w, hist[1:])
        counts, d = self.counts[k], self.disc[k]
        children = {g: c for g, c in counts.items() if g[:-1] == hist}
        total = sum(children.values())
        if total == 0:
            return lower
        gamma = sum(d[min(c, 3) - 1] for c in children.values())
        a = children.get(hist + (w,), 0)
        own = max(a - d[min(a, 3) - 1], 0.0) if a > 0 else 0.0
        return (own + gamma * lower) / total

    def log_probs(self, stream: list[int]) -> list[float]:
        return [
            math.log(self.prob(stream[t], tuple(stream[max(0, t - self.n + 1) : t])))
            for t in range(1, len(stream))
        ]


def _random_text(rng: np.random.Generator, size: int) -> np.ndarray:
    """A skewed random text over tokens 0–4 of V = 6 (token 5 never occurs)."""
    return rng.choice(5, size=size, p=[0.4, 0.25, 0.15, 0.12, 0.08])


@pytest.mark.parametrize("variant", ["single", "modified", 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_kneser_ney_matches_reference(order: int, variant: Discount) -> None:
    rng = np.random.default_rng(order)
    train = _random_text(rng, 400)
    held = np.r_[_random_text(rng, 60), 5, _random_text(rng, 20)]  # with an unseen token
    lm = KneserNeyLM(order, 6, discount=variant).fit(train)
    ref = RefKN(order, 6, train.tolist(), variant)
    for k, level in enumerate(lm.levels, start=1):
        assert level.discount_table == pytest.approx(tuple(ref.disc[k]), abs=1e-15)
    want = np.array(ref.log_probs(held.tolist()))
    np.testing.assert_allclose(lm.log_prob(held), want, rtol=0, atol=1e-9)
    assert lm.perplexity(held) == pytest.approx(math.exp(-want.mean()), rel=1e-9)


@pytest.mark.parametrize("variant", ["single", "modified", 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one(order: int, variant: Discount) -> None:
    rng = np.random.default_rng(10 + order)
    train = _random_text(rng, 300)
    lm = KneserNeyLM(order, 6, discount=variant).fit(train)
    contexts = [(), (0,), (5,), tuple(train[:7]), tuple(train[-3:]), (5, 5, 5, 5), (4, 3, 2, 1)]
    for context in contexts:
        p = lm.prob_table(context)
        assert p.shape == (6,)
        assert p.min() > 0, context
        assert p.sum() == pytest.approx(1.0, abs=1e-12), context


def test_modified_discounts_by_hand() -> None:
    # bigram types of "abababcab": ab 4, ba 2, bc 1, ca 1 → n1 = 2, n2 = 1, n3 = 0, n4 = 1
    text = np.array([0, 1, 0, 1, 0, 1, 2, 0, 1])
    lm = KneserNeyLM(2, 3, discount="modified").fit(text)
    y = 2 / (2 + 2)
    # D(1) = 1 − 2Y·1/2 = 1/2; D(2) = 2 − 3Y·0/1 = 2; D(≥3): n3 = 0 → falls back to Y
    assert lm.levels[1].discount_table == pytest.approx((1 - 2 * y / 2, 2.0, y), abs=1e-15)


# ------------------------------------------------------------------------ order selection


def test_best_kneser_ney_reads_only_train_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    train, val = _random_text(rng, 2000), _random_text(rng, 500) + 100  # val: other ids
    seen: list[np.ndarray] = []
    fit, perplexity = KneserNeyLM.fit, KneserNeyLM.perplexity

    def spy_fit(self: KneserNeyLM, tokens: np.ndarray) -> KneserNeyLM:
        seen.append(np.asarray(tokens))
        return fit(self, tokens)

    def spy_perplexity(self: KneserNeyLM, tokens: np.ndarray) -> float:
        seen.append(np.asarray(tokens))
        return perplexity(self, tokens)

    monkeypatch.setattr(KneserNeyLM, "fit", spy_fit)
    monkeypatch.setattr(KneserNeyLM, "perplexity", spy_perplexity)
    order, model = best_kneser_ney(train, 6, orders=range(1, 6), holdout_fraction=0.1)
    # fits on the first 1800 (each order), scores the last 200, refits on all 2000
    assert [len(a) for a in seen] == [1800, 200] * 5 + [2000]
    for a in seen:
        assert any(np.array_equal(a, train[s : s + len(a)]) for s in (0, 1800))
    assert model.order == order and np.array_equal(seen[-1], train)
    want = {n: perplexity(fit(KneserNeyLM(n, 6), train[:1800]), train[1800:]) for n in range(1, 6)}
    assert order == min(want, key=want.__getitem__)
    assert holdout_perplexities(train, 6, range(1, 6)) == pytest.approx(want, rel=1e-12)
    del val


def test_lm_baselines_fits_on_train_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    train, val = _random_text(rng, 1500), _random_text(rng, 300)
    val[0] = 5  # an id never in train: any fit on val would count it
    fitted: list[np.ndarray] = []
    fit = KneserNeyLM.fit

    def spy_fit(self: KneserNeyLM, tokens: np.ndarray) -> KneserNeyLM:
        fitted.append(np.asarray(tokens))
        return fit(self, tokens)

    monkeypatch.setattr(KneserNeyLM, "fit", spy_fit)
    out = lm_baselines(train, val, 6, orders=range(1, 4))
    assert all(np.array_equal(a, train[: len(a)]) for a in fitted)
    kn = out["kneser_ney"]
    model = fit(KneserNeyLM(kn["order"], 6), train)
    assert kn["val_perplexity"] == pytest.approx(model.perplexity(val), rel=1e-12)
    assert out["unigram"]["val_perplexity"] == pytest.approx(
        UnigramLM(6).fit(train).perplexity(val), rel=1e-12
    )
    assert set(kn["holdout_perplexity"]) == {"1", "2", "3"}


def test_time_machine_reproduces_issue_figures() -> None:
    """Issue 19 measured an interpolated KN n-gram (fixed D = 0.75, an independent code) on
    d2l's split: 5-gram 4.41, 6-gram 4.27, 7-gram 4.31 (2 decimals)."""
    from grukit.data.text import load_corpus, split_corpus

    corpus, vocab = load_corpus()
    train, val = (part.numpy() for part in split_corpus(corpus, 0.1))
    got = {
        n: KneserNeyLM(n, len(vocab), discount=0.75).fit(train).perplexity(val) for n in (5, 6, 7)
    }
    assert got == pytest.approx({5: 4.41, 6: 4.27, 7: 4.31}, abs=0.005)


# -------------------------------------------------------------------------------- errors


def test_errors_name_the_class_and_what_arrived() -> None:
    with pytest.raises(ValueError, match=r"KneserNeyLM: expected an int order ≥ 1, got 0"):
        KneserNeyLM(0, 5)
    with pytest.raises(ValueError, match=r"KneserNeyLM: expected discount in"):
        KneserNeyLM(2, 5, discount="kn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fixed discount in \(0, 1\], got 1.5"):
        KneserNeyLM(2, 5, discount=1.5)
    with pytest.raises(ValueError, match=r"vocab_size \*\* order < 2\*\*62"):
        KneserNeyLM(20, 1000)
    with pytest.raises(ValueError, match=r"KneserNeyLM: expected a fitted model"):
        KneserNeyLM(2, 5).perplexity([0, 1])
    with pytest.raises(ValueError, match=r"ids in \[0, 5\), got values in \[0, 7\]"):
        KneserNeyLM(2, 5).fit([0, 7, 1])
    with pytest.raises(TypeError, match=r"KneserNeyLM.fit: expected integer token ids"):
        KneserNeyLM(2, 5).fit(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"UnigramLM.fit: expected token ids of shape \(S,\)"):
        UnigramLM(5).fit(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"UnigramLM.log_prob: expected at least 2 tokens"):
        UnigramLM(5).fit([0, 1]).log_prob([1])
    with pytest.raises(ValueError, match=r"holdout_fraction in \(0, 1\), got 1.0"):
        best_kneser_ney(np.arange(20) % 5, 5, holdout_fraction=1.0)
    assert ngram.DISCOUNTS == ("single", "modified")


@pytest.mark.parametrize("order", [1, 3, 6])
def test_perplexity_in_chunks_equals_the_whole_stream(order: int, monkeypatch) -> None:
    """Scored CHUNK tokens at a time (bounded memory) the perplexity is the one-pass figure:
    every token keeps its full history across chunk edges (1e-12 relative)."""
    from grukit.models import ngram

    rng = np.random.default_rng(order)
    train, val = rng.integers(0, 5, 3000), rng.integers(0, 5, 1001)
    for model in (ngram.KneserNeyLM(order, 5).fit(train), ngram.UnigramLM(5).fit(train)):
        whole = model.perplexity(val)
        for chunk in (1, 7, 100):
            monkeypatch.setattr(ngram, "CHUNK", chunk)
            assert model.perplexity(val) == pytest.approx(whole, rel=1e-12)
        monkeypatch.setattr(ngram, "CHUNK", 1 << 18)
