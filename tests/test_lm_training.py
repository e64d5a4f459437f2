"""The LM training loop: it learns, resumes bitwise, generates deterministically."""

from __future__ import annotations

import math

import pytest
import torch

from grukit.data.text import read_time_machine
from grukit.training import RunDir, load_state
from grukit.training.lm import PRESETS, LMConfig, evaluate, generate, load_data, load_run, train_lm

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(read_time_machine()[:6000], encoding="utf-8")
    return path


def tiny(corpus_file, **kw) -> LMConfig:
    base = dict(
        text=str(corpus_file),
        max_tokens=None,
        batch_size=4,
        num_steps=8,
        hidden_size=24,
        epochs=4,
        seed=3,
        eval_batch_size=8,
    )
    base.update(kw)
    return LMConfig(**base)


def test_presets_are_d2l_and_valid() -> None:
    d2l = PRESETS["d2l"]
    assert (d2l.batch_size, d2l.num_steps, d2l.hidden_size, d2l.num_layers) == (32, 35, 256, 1)
    assert (d2l.cell, d2l.embedding_dim, d2l.optimizer, d2l.lr, d2l.clip) == (
        "gru",
        None,
        "sgd",
        1.0,
        1.0,
    )
    assert (d2l.epochs, d2l.max_tokens, d2l.partition) == (500, 10_000, "sequential")
    assert d2l.keep == "last" and LMConfig().keep == PRESETS["book"].keep == "best"
    assert PRESETS["book"].max_tokens is None and PRESETS["book"].val_fraction == 0.1
    assert LMConfig.from_dict(d2l.to_dict()) == d2l
    with pytest.raises(ValueError, match="partition"):
        LMConfig(partition="shuffled")


@pytest.mark.parametrize("partition", ["sequential", "random"])
def test_tiny_run_lowers_perplexity(tmp_path, corpus_file, partition) -> None:
    cfg = tiny(corpus_file, partition=partition, optimizer="adam", lr=0.01, epochs=5)
    summary = train_lm(cfg, tmp_path / "run", show_progress=False)
    records = RunDir(tmp_path / "run").read_metrics()
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    first, last = records[0]["train_perplexity"], records[-1]["train_perplexity"]
    assert last < 0.8 * first  # it learns
    assert summary["train_perplexity"] == last and summary["epochs_completed"] == 5
    assert summary["val_perplexity"] < 28  # better than uniform over the vocabulary
    for name in ("config.json", "model.safetensors", "checkpoint.safetensors", "perplexity.png"):
        assert (tmp_path / "run" / name).is_file()
    # evaluate() agrees with an independent token-by-token computation
    model, vocab, _ = load_run(tmp_path / "run")
    val = torch.tensor(vocab.encode(list("the time traveller smiled")))
    with torch.no_grad():
        logits, _ = model(val[None, :-1])
    ref = math.exp(float(torch.nn.functional.cross_entropy(logits, val[1:])))
    assert evaluate(model, val, batch_size=1, num_steps=5) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(
            optimizer="adam",
            lr=0.01,
            dropout=0.2,
            embedding_dim=8,
            lr_schedule="cosine",
            partition="random",
        ),
    ],
)
def test_resume_is_bitwise_equal(tmp_path, corpus_file, kw) -> None:
    cfg = tiny(corpus_file, **kw)
    train_lm(cfg, tmp_path / "whole", show_progress=False)
    train_lm(cfg, tmp_path / "cut", show_progress=False, until_epoch=2)
    assert len(RunDir(tmp_path / "cut").read_metrics()) == 2
    torch.manual_seed(12345)  # the resumed run must not depend on the process's RNG
    train_lm(cfg, tmp_path / "cut", show_progress=False, resume=True)
    a = load_state(tmp_path / "whole" / "checkpoint.safetensors")
    b = load_state(tmp_path / "cut" / "checkpoint.safetensors")
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ra = RunDir(tmp_path / "whole").read_metrics()
    rb = RunDir(tmp_path / "cut").read_metrics()
    assert [r["train_perplexity"] for r in ra] == [r["train_perplexity"] for r in rb]


def test_resume_needs_a_checkpoint_and_the_same_config(tmp_path, corpus_file) -> None:
    with pytest.raises(FileNotFoundError):
        train_lm(tiny(corpus_file), tmp_path / "none", resume=True, show_progress=False)
    train_lm(tiny(corpus_file, epochs=1), tmp_path / "run", show_progress=False)
    with pytest.raises(ValueError, match="config"):
        train_lm(
            tiny(corpus_file, epochs=1, lr=0.5), tmp_path / "run", resume=True, show_progress=False
        )


def test_generation(tmp_path, corpus_file) -> None:
    train_lm(tiny(corpus_file, epochs=2), tmp_path / "run", show_progress=False)
    model, vocab, _ = load_run(tmp_path / "run")
    greedy = generate(model, vocab, "Time Traveller", 20)
    assert greedy.startswith("time traveller") and len(greedy) == len("time traveller") + 20
    assert generate(model, vocab, "time traveller", 20) == greedy

    def sample(seed: int) -> str:
        g = torch.Generator().manual_seed(seed)
        return generate(model, vocab, "time", 40, temperature=1.0, top_k=5, generator=g)

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(4)}) > 1
    one = generate(
        model,
        vocab,
        "time",
        10,
        temperature=1.0,
        top_k=1,
        generator=torch.Generator().manual_seed(0),
    )
    assert one == generate(model, vocab, "time", 10)  # top-1 sampling is greedy
    with pytest.raises(ValueError, match="prefix"):
        generate(model, vocab, "!!", 5)


def test_corpus_shorter_than_one_batch(tmp_path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("the time machine", encoding="utf-8")
    with pytest.raises(ValueError, match="at least"):
        train_lm(LMConfig(text=str(path)), tmp_path / "run", show_progress=False)


def test_summary_has_the_count_baselines_on_the_same_split(tmp_path, corpus_file) -> None:
    """summary.json's baselines are the n-gram models fitted on exactly the run's training
    tokens and scored on its validation tokens (oracle: lm_baselines on load_data's split)."""
    from grukit.models.ngram import lm_baselines

    cfg = tiny(corpus_file, epochs=1)
    summary = train_lm(cfg, tmp_path / "run", show_progress=False)
    train_part, val_part, vocab = load_data(cfg)
    want = lm_baselines(train_part, val_part, len(vocab))
    got = summary["baselines"]
    assert got["kneser_ney"]["order"] == want["kneser_ney"]["order"]
    for name in ("unigram", "kneser_ney"):
        assert got[name]["val_perplexity"] == pytest.approx(want[name]["val_perplexity"], abs=1e-12)
    assert 1 < got["kneser_ney"]["val_perplexity"] < got["unigram"]["val_perplexity"] < len(vocab)


def test_keep_best_reports_and_saves_the_best_validation_epoch(tmp_path, corpus_file) -> None:
    """keep="best": model.safetensors holds the epoch of least validation perplexity and the
    summary reports that epoch's figures (oracle: metrics.jsonl's minimum)."""
    cfg = tiny(corpus_file, optimizer="adam", lr=0.05, epochs=6, keep="best")
    summary = train_lm(cfg, tmp_path / "run", show_progress=False)
    records = RunDir(tmp_path / "run").read_metrics()
    best = min(records, key=lambda r: r["val_perplexity"])
    assert summary["kept_epoch"] == summary["best_epoch"] == best["epoch"] < 6  # not the last
    assert summary["val_perplexity"] == best["val_perplexity"]
    model, _, _ = load_run(tmp_path / "run")
    _, val_part, _ = load_data(cfg)
    ppl = evaluate(model, val_part, batch_size=cfg.eval_batch_size, num_steps=cfg.num_steps)
    assert ppl == pytest.approx(best["val_perplexity"], rel=1e-9)


def test_bf16_precision_trains_close_to_float32(tmp_path, corpus_file, monkeypatch) -> None:
    """--precision bf16: the forward runs under bfloat16 autocast, the GRU's input and
    weight-gradient GEMMs in bfloat16 (forced on here: this CPU may lack bfloat16 units).
    Oracle: the same run in float32. It learns as much: validation perplexity within 5%
    (bfloat16 rounds each GEMM operand by up to 2^-9; measured 0.1% here)."""
    from grukit import _autocast

    monkeypatch.setenv(_autocast.ENV, "1")
    seen = []
    real = _autocast.matmul
    monkeypatch.setattr(_autocast, "matmul", lambda a, b, d: seen.append(d) or real(a, b, d))
    kw = dict(optimizer="adam", lr=0.01, epochs=3, embedding_dim=8)  # an embedding: dense x
    low = train_lm(tiny(corpus_file, precision="bf16", **kw), tmp_path / "bf16",
                   show_progress=False)  # fmt: skip
    assert torch.bfloat16 in seen  # the GRU's GEMMs took bfloat16 operands
    seen.clear()
    full = train_lm(tiny(corpus_file, **kw), tmp_path / "f32", show_progress=False)
    assert torch.bfloat16 not in seen
    assert low["val_perplexity"] == pytest.approx(full["val_perplexity"], rel=5e-2)
    assert low["val_perplexity"] != full["val_perplexity"]
    with pytest.raises(ValueError, match="precision"):
        LMConfig(precision="fp16")
