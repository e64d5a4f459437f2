"""The language model's regularisers and averaging (issue 19) and its cells (issue 18):
each option changes what it should, against a hand computation."""

from __future__ import annotations

import argparse

import pytest
import torch

from grukit import GRU, LayerNormGRU
from grukit.cli.train_options import add_config_options
from grukit.data.text import Vocab, read_time_machine
from grukit.models.charlm import CharLM, locked_dropout
from grukit.training import load_state
from grukit.training.averaging import WeightAverage
from grukit.training.checkpoint import load_weights
from grukit.training.lm import LMConfig, LMJob, generate, train_lm
from grukit.training.trainer import optimizer_step

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-12  # float64 hand computations


def _inputs(model: CharLM) -> dict[str, torch.Tensor]:
    """Capture what the recurrent layers and the head receive in the next forward."""
    seen: dict[str, torch.Tensor] = {}
    model.rnn.register_forward_pre_hook(lambda m, a: seen.__setitem__("rnn", a[0]))
    model.head.register_forward_pre_hook(lambda m, a: seen.__setitem__("head", a[0]))
    return seen


# --- dropout ---------------------------------------------------------------------------------


def test_locked_dropout_one_mask_across_time() -> None:
    x = torch.ones(6, 4, 50, dtype=torch.float64)  # (T, N, F)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:1].expand_as(y))  # every step the first step's mask
    assert set(y.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1/(1 − p)
    assert locked_dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("variational", [True, False])
def test_embedding_dropout_mask_over_time(variational: bool) -> None:
    torch.manual_seed(0)
    model = CharLM(9, 8, embedding_dim=40, embedding_dropout=0.5, variational=variational)
    seen = _inputs(model)
    tokens = torch.full((3, 7), 4)  # (N, T): one token, so every step's embedding is equal
    model(tokens)
    x = seen["rnn"]  # (T, N, E)
    same = torch.equal(x, x[:1].expand_as(x))
    assert same == variational  # per element, 7 steps × 120 units never draw one mask
    emb = model.embedding.weight[4].detach()  # (E,)
    kept = x != 0
    torch.testing.assert_close(x[kept], (2 * emb).expand_as(x)[kept], rtol=0, atol=1e-6)


def test_output_and_embedding_dropout_apart() -> None:
    torch.manual_seed(0)
    model = CharLM(9, 64, embedding_dim=16, dropout=0.3, embedding_dropout=0.0,
                   output_dropout=0.5, variational=True)  # fmt: skip
    assert (model.embedding_dropout, model.output_dropout, model.dropout) == (0.0, 0.5, 0.3)
    seen = _inputs(model)
    tokens = torch.randint(0, 9, (5, 6))
    model(tokens)
    torch.testing.assert_close(seen["rnn"], model.embedding(tokens.t()), rtol=0, atol=0)
    head_in = seen["head"].reshape(6, 5, 64)  # (T, N, H)
    zeros = head_in == 0
    assert torch.equal(zeros, zeros[:1].expand_as(zeros)) and 0.3 < zeros.float().mean() < 0.7
    # None: the embedding and output dropout follow ``dropout`` (the book preset's behaviour)
    model = CharLM(9, 8, embedding_dim=4, dropout=0.2)
    assert (model.embedding_dropout, model.output_dropout) == (0.2, 0.2)


def test_dropout_is_the_identity_in_eval_mode() -> None:
    kw = dict(embedding_dim=6, num_layers=2, dtype=torch.float64)
    noisy = CharLM(9, 8, dropout=0.4, output_dropout=0.6, variational=True, **kw)
    plain = CharLM(9, 8, **kw)
    plain.load_state_dict(noisy.state_dict())
    tokens = torch.randint(0, 9, (3, 5))
    noisy.eval(), plain.eval()
    torch.testing.assert_close(noisy(tokens)[0], plain(tokens)[0], rtol=0, atol=0)
    noisy.train()
    assert not torch.allclose(noisy(tokens)[0], plain(tokens)[0])


# --- weight tying ----------------------------------------------------------------------------


def test_tied_weights_share_the_tensor() -> None:
    model = CharLM(9, 6, embedding_dim=6, tie_weights=True, dtype=torch.float64)
    assert model.head.weight is model.embedding.weight and model.proj is None
    names = [n for n, _ in model.named_parameters()]
    assert "head.weight" not in names  # one parameter: the optimizer steps it once
    with torch.no_grad():
        model.embedding.weight.add_(1.0)
    assert torch.equal(model.head.weight, model.embedding.weight)
    # gradient: the sum of the embedding's and the head's
    tokens = torch.randint(0, 9, (2, 4))
    logits, _ = model(tokens)
    logits.sum().backward()
    twin = CharLM(9, 6, embedding_dim=6, dtype=torch.float64)
    sd = model.state_dict()
    twin.load_state_dict(sd)
    twin(tokens)[0].sum().backward()
    want = twin.embedding.weight.grad + twin.head.weight.grad
    torch.testing.assert_close(model.embedding.weight.grad, want, rtol=TOL, atol=TOL)


def test_tied_weights_with_a_projection() -> None:
    model = CharLM(9, 8, embedding_dim=3, tie_weights=True, dtype=torch.float64)
    assert model.proj is not None and model.proj.weight.shape == (3, 8)
    model.eval()
    tokens = torch.randint(0, 9, (2, 5))
    logits, _ = model(tokens)
    y, _ = model.rnn(model.embedding(tokens.t()))  # (T, N, H)
    want = y.reshape(-1, 8) @ model.proj.weight.T @ model.embedding.weight.T + model.head.bias
    torch.testing.assert_close(logits, want, rtol=TOL, atol=TOL)


# --- cells and their regularisers ------------------------------------------------------------


def test_cells_and_recurrent_options_reach_the_layer() -> None:
    model = CharLM(9, 8, cell="layernorm-gru", recurrent_dropout=0.25, zoneout=0.1)
    assert isinstance(model.rnn, LayerNormGRU)
    assert (model.rnn.recurrent_dropout, model.rnn.zoneout) == (0.25, 0.1)
    model = CharLM(9, 8, cell="gru", zoneout=0.3, reset_after=False)
    assert type(model.rnn) is GRU and model.rnn.zoneout == 0.3 and not model.rnn.reset_after
    assert CharLM(**model.config()).config() == model.config()
    with pytest.raises(ValueError, match="CharLM: expected zoneout 0 for cell 'lstm'"):
        CharLM(9, 8, cell="lstm", zoneout=0.1)
    with pytest.raises(ValueError, match="CharLM.*embedding_dim"):
        CharLM(9, 8, tie_weights=True)


@pytest.mark.parametrize(
    "kw",
    [
        {"cell": "layernorm-gru"},
        {"cell": "gru", "zoneout": 0.2, "recurrent_dropout": 0.3},
        {"cell": "layernorm-gru", "zoneout": 0.1},
        {"cell": "lstm"},
        {"cell": "mingru"},
        {"cell": "rnn"},
    ],  # fmt: skip
)
def test_generate_steps_every_cell(kw: dict[str, object]) -> None:
    """Greedy generation (the layer stepped at T = 1, the state carried) equals the argmax
    of one forward pass over the whole generated text, at every generated position."""
    torch.manual_seed(1)
    vocab = Vocab(list("the time machine"))
    model = CharLM(len(vocab), 12, embedding_dim=5, dtype=torch.float64, **kw)  # type: ignore[arg-type]
    with torch.no_grad():  # never <unk> (index 0): it decodes to 5 characters, not 1
        model.head.bias[0] = -1e9
    model.train()  # generate must switch to eval mode itself
    text = generate(model, vocab, "the ti", 12)
    assert model.training and len(text) == 6 + 12
    ids = torch.tensor([vocab.encode(list(text))])
    model.eval()
    logits, _ = model(ids)  # (T, V)
    assert logits[5:-1].argmax(-1).tolist() == ids[0, 6:].tolist()


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"embedding_dropout": 1.0}, "embedding_dropout"),
        ({"output_dropout": -0.1}, "output_dropout"),
        ({"recurrent_dropout": 1.5}, "recurrent_dropout"),
        ({"zoneout": float("nan")}, "zoneout"),
        ({"ema": 1.0}, "ema"),
        ({"warmup": -1.0}, "warmup"),
        ({"variational": 1}, "variational"),
        ({"tie_weights": True}, "embedding_dim"),
        ({"cell": "lstm", "zoneout": 0.1}, "cell"),
        ({"cell": "mingru-magic"}, "cell"),
        ({"optimizer": "lbfgs"}, "optimizer"),
    ],
)
def test_config_errors_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"LMConfig: expected {field}"):
        LMConfig(**kw)  # type: ignore[arg-type]


def test_cli_options() -> None:
    p = argparse.ArgumentParser()
    add_config_options(p, LMConfig, "model")
    args = p.parse_args(["--cell", "layernorm-gru", "--recurrent-dropout", "0.2", "--zoneout",
                         "0.1", "--variational", "--tie-weights", "--output-dropout", "none",
                         "--ema", "0.99", "--warmup", "1.5", "--optimizer", "adamw"])  # fmt: skip
    assert (args.cell, args.recurrent_dropout, args.zoneout) == ("layernorm-gru", 0.2, 0.1)
    assert args.variational and args.tie_weights and args.output_dropout is None
    assert (args.ema, args.warmup, args.optimizer) == (0.99, 1.5, "adamw")


def test_warmup_ramps_the_schedule() -> None:
    c = LMConfig(lr=2.0, epochs=4, warmup=2.0)
    assert c.lr_at(0.0) == 0.0 and c.lr_at(0.25) == 1.0 and c.lr_at(0.5) == c.lr_at(0.9) == 2.0
    cos = LMConfig(lr=2.0, epochs=4, warmup=2.0, lr_schedule="cosine", lr_min=0.0)
    plain = LMConfig(lr=2.0, epochs=4, lr_schedule="cosine", lr_min=0.0)
    assert cos.lr_at(0.25) == pytest.approx(0.5 * plain.lr_at(0.25), rel=1e-15)
    assert cos.lr_at(0.75) == plain.lr_at(0.75)


# --- weight averaging ------------------------------------------------------------------------


def test_weight_average_by_hand_over_two_steps() -> None:
    torch.manual_seed(0)
    model = CharLM(5, 3, embedding_dim=3, tie_weights=True, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    avg, d = WeightAverage(model, 0.75), 0.75
    snaps = [{k: v.clone() for k, v in model.state_dict().items()}]
    for _ in range(2):
        logits, _ = model(torch.randint(0, 5, (2, 4)))
        optimizer_step(model, opt, logits.logsumexp(-1).mean(), clip=10.0)
        avg.update()
        snaps.append({k: v.clone() for k, v in model.state_dict().items()})
    got = avg.state_dict()
    for k, w in got.items():  # a_2 = d·(d·θ_0 + (1 − d)·θ_1) + (1 − d)·θ_2
        want = d * (d * snaps[0][k] + (1 - d) * snaps[1][k]) + (1 - d) * snaps[2][k]
        torch.testing.assert_close(w, want, rtol=TOL, atol=TOL, msg=k)
    assert not torch.equal(got["rnn.weight_hh_l0"], snaps[2]["rnn.weight_hh_l0"])
    torch.testing.assert_close(got["head.weight"], got["embedding.weight"], rtol=0, atol=0)
    with avg.applied():
        torch.testing.assert_close(model.state_dict(), got, rtol=0, atol=0)
    torch.testing.assert_close(model.state_dict(), snaps[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="WeightAverage: expected a decay in"):
        WeightAverage(model, 1.0)


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(read_time_machine()[:3000], encoding="utf-8")
    return path


def _tiny(corpus_file, **kw) -> LMConfig:
    base = dict(text=str(corpus_file), max_tokens=None, batch_size=4, num_steps=8,
                hidden_size=12, embedding_dim=6, epochs=2, seed=3, eval_batch_size=8,
                optimizer="adam", lr=0.01, ema=0.9, keep="last")  # fmt: skip
    base.update(kw)
    return LMConfig(**base)  # type: ignore[arg-type]


def test_training_keeps_the_average(tmp_path, corpus_file) -> None:
    """model.safetensors holds the average of the weights after every step, replayed by hand
    on the job's own batches; the checkpoint keeps the raw weights to train on from."""
    cfg = _tiny(corpus_file, epochs=1)
    summary = train_lm(cfg, tmp_path / "run", show_progress=False)
    job = LMJob(cfg)  # the same seed: the same initial weights
    model, d = job.model, cfg.ema
    avg = {k: v.detach().clone().double() for k, v in model.named_parameters()}
    carry = None
    for batch in job.batches(0):
        loss, carry, _ = job.loss(batch, carry)
        optimizer_step(model, job.optimizer, loss, cfg.clip)
        for k, p in model.named_parameters():
            avg[k] = d * avg[k] + (1 - d) * p.detach().double()
    saved, _ = load_weights(tmp_path / "run" / "model.safetensors")
    for k, a in avg.items():
        torch.testing.assert_close(saved[k].double(), a, rtol=1e-5, atol=1e-6, msg=k)
    ckpt = load_state(tmp_path / "run" / "checkpoint.safetensors")
    for k, p in model.named_parameters():
        torch.testing.assert_close(ckpt["model"][k], p.detach(), rtol=1e-5, atol=1e-6, msg=k)
    assert summary["val_perplexity"] is not None


def test_resume_with_averaging_is_bitwise(tmp_path, corpus_file) -> None:
    cfg = _tiny(corpus_file, epochs=3, keep="best", variational=True, dropout=0.2,
                tie_weights=True, warmup=1.0)  # fmt: skip
    whole = train_lm(cfg, tmp_path / "whole", show_progress=False)
    train_lm(cfg, tmp_path / "part", show_progress=False, until_epoch=1)
    part = train_lm(cfg, tmp_path / "part", show_progress=False, resume=True)
    assert part["val_perplexity"] == whole["val_perplexity"]
    a = load_weights(tmp_path / "whole" / "model.safetensors")[0]
    b = load_weights(tmp_path / "part" / "model.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
