"""Resuming picks the newest checkpoint that was saved whole; the final model is the last checkpoint's files, linked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

from trainers.common import fit, last_checkpoint


def test_a_checkpoint_cut_off_while_saving_is_passed_over(tmp_path):
    assert last_checkpoint(tmp_path / "none") is None
    for step in (2, 4, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")  # 10 > 4 numerically, but it is cut off
    (tmp_path / "checkpoint-4" / "trainer_state.json").unlink()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


class _Trainer:
    """A stand-in for the Trainer's end of training: it has reached `step` and saves by writing new weights (the real
    Trainer always checkpoints its last step, so its save path is not reached on a real run)."""

    def __init__(self, step: int):
        self.args = SimpleNamespace(should_save=True)
        self.state = SimpleNamespace(global_step=step)

    def train(self, resume_from_checkpoint=None):
        pass

    def save_model(self, out: str):
        with open(Path(out) / "model.safetensors", "wb") as f:  # in place, as a save opens an existing file
            f.write(b"new weights")


def _checkpoint(out: Path, step: int) -> Path:
    ckpt = out / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for name, data in (("model.safetensors", b"weights"), ("config.json", b"{}"), ("optimizer.pt", b"adam"),
                       ("rng_state.pth", b"rng"), ("trainer_state.json", b"{}")):  # fmt: skip
        (ckpt / name).write_bytes(data)
    return ckpt


def test_the_last_checkpoints_model_is_linked_not_written_again(tmp_path):
    ckpt = _checkpoint(tmp_path, 3)
    fit(_Trainer(3), tmp_path, resume=True)
    assert sorted(f.name for f in tmp_path.iterdir() if f.is_file()) == ["config.json", "model.safetensors"]
    assert os.path.samefile(tmp_path / "model.safetensors", ckpt / "model.safetensors")  # the same bytes, once


def test_a_save_past_the_last_checkpoint_does_not_write_through_its_links(tmp_path):
    ckpt = _checkpoint(tmp_path, 3)
    fit(_Trainer(3), tmp_path, resume=True)  # a first run: its model is checkpoint-3's
    (tmp_path / "notes.txt").write_text("mine")
    os.link(tmp_path / "notes.txt", tmp_path.parent / f"{tmp_path.name}-notes.txt")  # the user's own link
    fit(_Trainer(4), tmp_path, resume=True)  # a later one ends where no checkpoint is: it saves
    assert (tmp_path / "model.safetensors").read_bytes() == b"new weights"
    assert (ckpt / "model.safetensors").read_bytes() == b"weights"  # the checkpoint a resume reads is untouched
    assert (tmp_path / "notes.txt").read_text() == "mine"  # a file linked elsewhere is not the trainer's to remove
