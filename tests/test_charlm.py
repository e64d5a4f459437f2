"""CharLM against d2l's RNNModel built on torch.nn (the oracle), in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from grukit.models.charlm import CharLM

TOL = 1e-10  # float64


class D2LRNNModel(nn.Module):
    """d2l's RNNModel: one-hot input, a torch.nn recurrent layer, a Linear head."""

    def __init__(self, rnn: nn.RNNBase, vocab_size: int) -> None:
        super().__init__()
        self.rnn, self.vocab_size = rnn, vocab_size
        self.linear = nn.Linear(rnn.hidden_size, vocab_size, dtype=torch.float64)

    def forward(self, inputs, state):
        x = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float64)
        y, state = self.rnn(x, state)
        return self.linear(y.reshape((-1, y.shape[-1]))), state


def _twin(model: CharLM, cell: str) -> D2LRNNModel:
    cls = {"gru": nn.GRU, "rnn": nn.RNN, "lstm": nn.LSTM}[cell]
    rnn = cls(model.vocab_size, model.hidden_size, model.num_layers, dtype=torch.float64)
    rnn.load_state_dict(model.rnn.state_dict())
    twin = D2LRNNModel(rnn, model.vocab_size)
    twin.linear.load_state_dict(model.head.state_dict())
    return twin


@pytest.mark.parametrize("cell", ["gru", "rnn", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_matches_d2l_rnnmodel(cell: str, num_layers: int) -> None:
    model = CharLM(7, 5, num_layers, cell=cell, dtype=torch.float64)
    twin = _twin(model, cell)
    tokens = torch.randint(0, 7, (3, 4))  # (N, T)
    logits, state = model(tokens)
    state0 = model.begin_state(3)
    ref, ref_state = twin(tokens, state0)
    assert logits.shape == (4 * 3, 7)  # (T·N, V), time-major as d2l
    torch.testing.assert_close(logits, ref, rtol=TOL, atol=TOL)
    states = state if isinstance(state, tuple) else (state,)
    refs = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    for s, r in zip(states, refs, strict=True):
        assert s.shape == (num_layers, 3, 5)
        torch.testing.assert_close(s, r, rtol=TOL, atol=TOL)
    # gradients too
    y = torch.randint(0, 7, (4 * 3,))
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref, y).backward()
    for (name, p), q in zip(model.rnn.named_parameters(), twin.rnn.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_carried_state_equals_one_long_sequence() -> None:
    model = CharLM(6, 4, cell="gru", reset_after=False, dtype=torch.float64)
    tokens = torch.randint(0, 6, (2, 10))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=TOL, atol=TOL)


def test_embedding_input_and_config() -> None:
    model = CharLM(9, 8, 2, embedding_dim=3, dropout=0.2)
    assert model.rnn.input_size == 3 and model.rnn.dropout == 0.2
    logits, _ = model(torch.randint(0, 9, (2, 5)))
    assert logits.shape == (10, 9)
    assert CharLM(**model.config()).config() == model.config()
    model.eval()  # dropout off: deterministic
    t = torch.randint(0, 9, (2, 5))
    assert torch.equal(model(t)[0], model(t)[0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cell"):
        CharLM(5, 4, cell="tcn")
    with pytest.raises(ValueError, match="hidden_size"):
        CharLM(5, 0)
    with pytest.raises(ValueError, match="backend"):
        CharLM(5, 4, backend="cuda-magic")
    model = CharLM(5, 4)
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        model(torch.zeros(5, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(2, 3))
