"""Safe files: checkpoints round-trip exactly, bad files are refused by name, writes are atomic."""

from __future__ import annotations

import json

import pytest
import torch

from grukit.training import (
    RunDir,
    atomic_write,
    load_state,
    load_weights,
    read_json,
    save_state,
    save_weights,
)


def test_state_round_trips_tensors_containers_and_optimizer(tmp_path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": 3, "t": (1, "a", None)}
    save_state(tmp_path / "c.safetensors", state)
    back = load_state(tmp_path / "c.safetensors")
    assert back["epoch"] == 3 and back["t"] == (1, "a", None)
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    assert list(back["opt"]["state"]) == [0, 1]  # int keys survive
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(back["opt"])
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_weights_file_is_plain_safetensors_with_config(tmp_path) -> None:
    from safetensors.torch import load_file

    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    save_weights(tmp_path / "m.safetensors", sd, {"hidden": 4})
    assert torch.equal(load_file(tmp_path / "m.safetensors")["w"], sd["w"])
    tensors, config = load_weights(tmp_path / "m.safetensors")
    assert config == {"hidden": 4} and torch.equal(tensors["w"], sd["w"])


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"])
def test_corrupt_files_are_refused_by_name(tmp_path, content: bytes) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=r"expected a grukit checkpoint in .*bad.safetensors"):
        load_state(bad)
    with pytest.raises(
        ValueError, match=r"expected safetensors model weights in .*bad.safetensors"
    ):
        load_weights(bad)


def test_foreign_safetensors_is_not_a_checkpoint(tmp_path) -> None:
    save_weights(tmp_path / "m.safetensors", {"w": torch.zeros(1)}, {})
    with pytest.raises(ValueError, match="got a foreign header"):
        load_state(tmp_path / "m.safetensors")


def test_missing_files_raise_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected a checkpoint at"):
        load_state(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="expected a run config"):
        RunDir(tmp_path).read_config()


def test_a_failed_write_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "c.safetensors"
    save_state(target, {"epoch": 1})
    with pytest.raises(TypeError):
        save_state(target, {"epoch": object()})  # not serialisable: fails before replacing
    assert load_state(target) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temp left


def test_atomic_write_replaces_whole_and_read_json_names_bad_json(tmp_path) -> None:
    p = tmp_path / "x.json"
    atomic_write(p, b'{"a": 1}')
    assert read_json(p) == {"a": 1}
    atomic_write(p, b"{broken")
    with pytest.raises(ValueError, match=r"expected JSON file .*x.json to hold valid JSON"):
        read_json(p)


def test_metrics_resume_drops_lines_past_the_checkpoint_and_a_torn_last_line(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    for epoch in (1, 2, 3):
        run.append_metrics({"epoch": epoch})
    with open(run.metrics, "a") as f:
        f.write('{"epoch": 4, "ppl"')  # a crash mid-line
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3]
    assert [r["epoch"] for r in run.keep_metrics_until(2)] == [1, 2]
    assert [json.loads(line)["epoch"] for line in run.metrics.read_text().splitlines()] == [1, 2]
