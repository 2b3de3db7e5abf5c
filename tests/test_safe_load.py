"""Checkpoint files are read without running code from them, and bad files give clear errors."""

from __future__ import annotations

import argparse
import os
import pathlib

import pytest
import torch

from stableviton.safe_load import CheckpointError, load_state_dict_file


def lightning_checkpoint(path, state_dict):
    torch.save({
        "epoch": 19, "global_step": 1234, "pytorch-lightning_version": "1.5.0",
        "state_dict": state_dict,
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}],
        "hyper_parameters": argparse.Namespace(config_name="VITONHD", batch_size=32),
        "callbacks": {"ModelCheckpoint": {"dirpath": pathlib.PurePosixPath("/ckpts")}},
    }, path)


def test_lightning_metadata_is_skipped_and_reported(tmp_path):
    sd = {"a.weight": torch.randn(2, 3), "b": torch.arange(4)}
    lightning_checkpoint(tmp_path / "m.ckpt", sd)
    loaded, notes = load_state_dict_file(tmp_path / "m.ckpt")
    assert set(loaded) == {"a.weight", "b"} and torch.equal(loaded["a.weight"], sd["a.weight"])
    text = " ".join(notes)
    assert "argparse.Namespace" in text and "optimizer_states" in text and "hyper_parameters" in text


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": RunsCode(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing.*system"):
        load_state_dict_file(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_eval_and_subprocess_globals_are_refused(tmp_path):
    class Eval:
        def __reduce__(self):
            return (eval, ("1+1",))

    torch.save({"x": Eval()}, tmp_path / "eval.ckpt")
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_state_dict_file(tmp_path / "eval.ckpt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10, b"PK\x03\x04garbage"])
def test_corrupt_files_give_a_clear_error(tmp_path, content):
    for name in ("x.ckpt", "x.safetensors"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a readable|could not be read"):
            load_state_dict_file(tmp_path / name)


def test_truncated_checkpoint(tmp_path):
    lightning_checkpoint(tmp_path / "full.ckpt", {"w": torch.randn(64, 64)})
    data = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_state_dict_file(tmp_path / "cut.ckpt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict_file(tmp_path / "nope.ckpt")
