"""Damaged or foreign run files are refused with a clear ValueError, never loaded; files
are written with the umask's mode; what a killed write leaves is cleaned up."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from grukit.cli import main
from grukit.data.text import read_time_machine
from grukit.training import RunDir, atomic_write, load_state, load_weights, save_state
from grukit.training.integrity import DIGEST_KEY
from grukit.training.lm import LMConfig, load_run, train_lm

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp: Path, **kw) -> LMConfig:
    text = tmp / "t.txt"
    if not text.exists():
        text.write_text(read_time_machine()[:2500], encoding="utf-8")
    base = dict(text=str(text), max_tokens=None, batch_size=4, num_steps=8, hidden_size=8,
                epochs=2, seed=1, eval_batch_size=4)  # fmt: skip
    return LMConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> tuple[Path, LMConfig]:
    """A one-epoch run of two (resumable), copied per test by ``fresh``."""
    tmp = tmp_path_factory.mktemp("lm")
    cfg = _config(tmp)
    train_lm(cfg, tmp / "run", show_progress=False, until_epoch=1)
    return tmp / "run", cfg


@pytest.fixture
def fresh(lm_run, tmp_path) -> tuple[RunDir, LMConfig]:
    src, cfg = lm_run
    dst = tmp_path / "run"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return RunDir(dst), cfg


def _resume_fails(run: RunDir, cfg: LMConfig, match: str) -> None:
    before = run.checkpoint.read_bytes()
    with pytest.raises(ValueError, match=match):
        train_lm(cfg, run.path, resume=True, show_progress=False)
    assert run.checkpoint.read_bytes() == before  # refused before anything was written


def _edit(run: RunDir, change) -> None:
    """Rewrite the checkpoint through save_state (a valid digest over edited content)."""
    state = load_state(run.checkpoint)
    change(state)
    save_state(run.checkpoint, state)


def _rewrite_header(path: Path, change) -> None:
    """Edit the checkpoint's header metadata as text and recompute its digest (a forger's
    edit, which only the invariants can catch)."""
    from grukit.training.integrity import content_digest

    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"]["grukit.state"] = change(header["__metadata__"]["grukit.state"])
    header["__metadata__"].pop(DIGEST_KEY)

    def pack(h: dict) -> bytes:
        raw = json.dumps(h).encode()
        raw += b" " * (-len(raw) % 8)
        return len(raw).to_bytes(8, "little") + raw + data[8 + n :]

    header["__metadata__"][DIGEST_KEY] = content_digest(pack(header))
    path.write_bytes(pack(header))


def test_checkpoint_carries_a_digest_of_its_content(fresh) -> None:
    run, _ = fresh
    data = run.checkpoint.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    assert len(meta[DIGEST_KEY]) == 64
    # every byte of the body is covered: flipping the last one is refused
    run.checkpoint.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="match its content digest"):
        load_state(run.checkpoint)


def test_nan_written_into_the_body_is_refused(fresh) -> None:
    run, cfg = fresh
    data = bytearray(run.checkpoint.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    key = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    start = 8 + n + header[key]["data_offsets"][0]
    data[start : start + 4] = torch.tensor([float("nan")]).numpy().tobytes()
    run.checkpoint.write_bytes(bytes(data))
    _resume_fails(run, cfg, "content digest")


def test_nan_in_a_checkpoint_with_a_valid_digest_is_refused(fresh) -> None:
    run, cfg = fresh
    _edit(run, lambda s: s["model"]["head.bias"].__setitem__(0, float("nan")))
    _resume_fails(run, cfg, r"expected finite values in head.bias")


def test_dtype_relabelled_f32_to_i32_is_refused(fresh) -> None:
    run, cfg = fresh
    data = run.checkpoint.read_bytes()
    assert b'"dtype":"F32"' in data
    run.checkpoint.write_bytes(data.replace(b'"dtype":"F32"', b'"dtype":"I32"', 1))
    _resume_fails(run, cfg, "content digest")
    # and relabelled consistently (digest recomputed): the dtype check refuses it
    run.checkpoint.write_bytes(data)
    _edit(run, lambda s: s["model"].__setitem__("head.bias", s["model"]["head.bias"].view(
        torch.int32)))  # fmt: skip
    _resume_fails(run, cfg, r"expected head.bias of dtype torch.float32 .* got torch.int32")


@pytest.mark.parametrize("epoch", [-3, 3, True, "1"])
def test_epoch_outside_the_run_is_refused(fresh, epoch) -> None:
    run, cfg = fresh
    _edit(run, lambda s: s.__setitem__("epoch", epoch))
    _resume_fails(run, cfg, r"epoch")


def test_truncated_checkpoint_is_refused(fresh) -> None:
    run, cfg = fresh
    data = run.checkpoint.read_bytes()
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        run.checkpoint.write_bytes(data[:cut])
        _resume_fails(run, cfg, "unreadable|content digest")


def test_foreign_missing_and_shape_mismatched_weights_are_refused(fresh, tmp_path) -> None:
    run, cfg = fresh
    good = run.checkpoint.read_bytes()
    _edit(run, lambda s: s["model"].pop("head.weight"))
    _resume_fails(run, cfg, r"missing \['head.weight'\]")
    run.checkpoint.write_bytes(good)
    _edit(run, lambda s: s["model"].__setitem__("head.weight", torch.zeros(3, 3)))
    _resume_fails(run, cfg, r"head.weight of dtype torch.float32 and shape")
    run.checkpoint.write_bytes(good)
    _edit(run, lambda s: s.pop("rng"))
    _resume_fails(run, cfg, "expected a language-model checkpoint")
    run.checkpoint.write_bytes(good)
    _rewrite_header(run.checkpoint, lambda t: t.replace('"lr", 1.0', '"lr", Infinity', 1))
    _resume_fails(run, cfg, "finite optimizer lr")
    # another run's checkpoint (hidden size 12) dropped into this one
    other = _config(tmp_path, hidden_size=12, epochs=1)
    train_lm(other, tmp_path / "other", show_progress=False)
    run.checkpoint.write_bytes((tmp_path / "other" / "checkpoint.safetensors").read_bytes())
    _resume_fails(run, cfg, r"expected rnn.weight_ih_l0 of .* shape \(24, ")
    # plain safetensors (no digest) and the weights file are not checkpoints
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, run.checkpoint)
    _resume_fails(run, cfg, "content digest")


def test_model_weights_are_checked_when_a_run_is_loaded(fresh) -> None:
    run, cfg = fresh
    train_lm(cfg, run.path, resume=True, show_progress=False)  # writes model.safetensors
    weights, meta = load_weights(run.model)
    weights["head.bias"][0] = float("inf")
    from grukit.training import save_weights

    save_weights(run.model, weights, meta)
    with pytest.raises(ValueError, match="load_run: expected finite values in head.bias"):
        load_run(run.path)
    weights.pop("head.bias")
    save_weights(run.model, weights, meta)
    with pytest.raises(ValueError, match=r"missing \['head.bias'\]"):
        load_run(run.path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"[1, 2]", "JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nesting too deep|valid JSON"),
        (b'{"lm": 1, "vocab": []}', "language-model run"),
        (b"\xff\xfe", "valid JSON"),
    ],
)
def test_bad_config_json_is_refused(fresh, capsys, content: bytes, match: str) -> None:
    run, cfg = fresh
    run.config.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_run(run.path)
    _resume_fails(run, cfg, match)
    assert main(["lm", "generate", "--run", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grukit lm: error:") and len(err.splitlines()) == 1


def test_deeply_nested_or_foreign_checkpoint_header_is_refused(tmp_path) -> None:
    path = tmp_path / "c.safetensors"
    save_state(path, {"x": 1})
    _rewrite_header(path, lambda t: "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match="foreign header"):
        load_state(path)
    _rewrite_header(path, lambda t: '{"__tensor__": "t99"}')
    with pytest.raises(ValueError, match="foreign header"):
        load_state(path)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_and_run_folders_honour_the_umask(tmp_path, mask) -> None:
    old = os.umask(mask)
    try:
        atomic_write(tmp_path / "a.bin", b"x")
        train_lm(_config(tmp_path, epochs=1), tmp_path / "run", show_progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o777 & ~mask
    for name in ("config.json", "checkpoint.safetensors", "metrics.jsonl", "summary.json",
                 "model.safetensors", "perplexity.png"):  # fmt: skip
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o666 & ~mask, name


def test_a_killed_writes_temporary_files_are_cleaned_on_resume(fresh) -> None:
    run, cfg = fresh
    stale = [run.file(".checkpoint.safetensors.abc123.tmp"), run.file(".config.json.x.tmp")]
    for f in stale:
        f.write_bytes(b"half a write")
    train_lm(cfg, run.path, resume=True, show_progress=False)
    assert not any(f.exists() for f in stale)
    assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_refuses_what_is_not_a_regular_file(tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    for target, kind in ((fifo, "a FIFO"), (tmp_path / "dir", "a folder")):
        with pytest.raises(ValueError, match=f"regular file or absent, got {kind}"):
            atomic_write(target, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it was
    with pytest.raises(ValueError, match="character device"):
        atomic_write("/dev/null", b"x")
