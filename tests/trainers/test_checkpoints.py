"""Resuming picks the newest checkpoint that was saved whole."""

from __future__ import annotations

import json

from trainers.common import last_checkpoint


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
