"""grukit.data.text against d2l's pipeline: vocabulary, token counts, iterator shapes,
contiguity of sequential batches, random partitioning, the train/validation split."""

from __future__ import annotations

import re

import pytest
import torch

from grukit.data import text


def test_time_machine_matches_d2l() -> None:
    corpus, vocab = text.load_corpus()
    assert len(corpus) == 170_580  # d2l 0.17 load_corpus_time_machine()
    assert len(vocab) == 28
    assert vocab.idx_to_token[:5] == ["<unk>", " ", "e", "t", "a"]  # by frequency, as d2l
    # d2l's own recipe, written out independently
    lines = text.read_time_machine().splitlines()
    chars = "".join(re.sub("[^A-Za-z]+", " ", ln).strip().lower() for ln in lines)
    assert vocab.decode(corpus.tolist()) == chars
    assert text.load_corpus(max_tokens=10_000)[0].tolist() == corpus[:10_000].tolist()


def test_vocab_unknown_and_roundtrip() -> None:
    vocab = text.Vocab(list("abracadabra"))
    assert vocab.idx_to_token == ["<unk>", "a", "b", "r", "c", "d"]
    assert vocab["z"] == 0
    assert text.Vocab.from_list(vocab.to_list()).token_to_idx == vocab.token_to_idx


def test_raw_characters_and_bad_files(tmp_path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("Héllo,\nWorld!\n", encoding="utf-8")
    corpus, vocab = text.load_corpus(p, letters_only=False)
    assert vocab.decode(corpus.tolist()) == "Héllo,\nWorld!\n"
    corpus, vocab = text.load_corpus(p)
    assert vocab.decode(corpus.tolist()) == "h lloworld"  # d2l joins lines with no separator
    with pytest.raises(FileNotFoundError):
        text.load_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        text.load_corpus(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(ValueError, match="UTF-8"):
        text.load_corpus(tmp_path / "bin.txt")


@pytest.mark.parametrize("offset", [0, 3, 5])
def test_sequential_batches_are_contiguous(offset: int) -> None:
    corpus = torch.arange(1000)
    n, t = 4, 5
    batches = list(text.seq_data_iter_sequential(corpus, n, t, offset=offset))
    per = (1000 - offset - 1) // n
    assert len(batches) == per // t
    for x, y in batches:
        assert x.shape == y.shape == (n, t)
        assert torch.equal(y, x + 1)  # Y is X shifted by one token
    rows = torch.cat([x for x, _ in batches], dim=1)  # (N, batches·T)
    # row b continues itself across batches, rows are consecutive slices: no overlap, no gap
    expected = offset + torch.arange(n)[:, None] * per + torch.arange(rows.shape[1])
    assert torch.equal(rows, expected)


def test_sequential_offset_is_drawn_in_range() -> None:
    corpus = torch.arange(500)
    seen = set()
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        x, _ = next(text.seq_data_iter_sequential(corpus, 2, 5, generator=g))
        seen.add(int(x[0, 0]))
    assert seen == set(range(6))  # d2l: random.randint(0, num_steps), both ends


def test_random_partitioning() -> None:
    corpus = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    batches = list(text.seq_data_iter_random(corpus, 4, 5, generator=g))
    starts = torch.cat([x[:, 0] for x, _ in batches])
    start = int(starts.min()) % 5
    assert len(batches) == ((1000 - start - 1) // 5) // 4
    for x, y in batches:
        assert x.shape == y.shape == (4, 5)
        assert torch.equal(y, x + 1)
        assert torch.equal(x, x[:, :1] + torch.arange(5))  # each row is one subsequence
    assert bool(((starts - start) % 5 == 0).all())  # on the subsequence grid
    assert len(set(starts.tolist())) == len(starts)  # no subsequence twice
    assert starts.tolist() != sorted(starts.tolist())  # shuffled
    again = list(
        text.seq_data_iter_random(corpus, 4, 5, generator=torch.Generator().manual_seed(0))
    )
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


def test_split_is_by_position_and_disjoint() -> None:
    corpus = torch.arange(1000)
    train, val = text.split_corpus(corpus, 0.1)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), corpus)
    targets = torch.cat([y for _, y in text.seq_data_iter_sequential(train, 4, 5, offset=5)])
    assert int(targets.max()) < 900  # training never reads a validation token
    with pytest.raises(ValueError):
        text.split_corpus(corpus, 1.0)


def test_corpus_shorter_than_one_batch() -> None:
    with pytest.raises(ValueError, match="at least"):
        next(text.seq_data_iter_sequential(torch.arange(50), 4, 12))
    with pytest.raises(ValueError, match="at least"):
        next(text.seq_data_iter_random(torch.arange(50), 4, 12))


def test_binary_text_is_refused(tmp_path) -> None:
    # valid UTF-8 with NUL bytes (a zip, an image): not a text to learn from
    (tmp_path / "nul.bin").write_bytes(b"PK\x03\x04\x00\x00 some text")
    with pytest.raises(ValueError, match=r"binary data \(a NUL byte at offset 4\)"):
        text.load_corpus(tmp_path / "nul.bin", letters_only=False)
