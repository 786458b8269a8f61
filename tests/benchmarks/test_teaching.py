"""benchmarks/teaching.py through every step at a tiny size, each a real `factory` command: generation of the
verified and the control sets (the transformers engine: it starts in seconds), SFT of the bundled model on each,
evaluation of the three models. Its goals cannot be met on 2 problems: it says so, and exits 1 unless by chance."""

from __future__ import annotations

import pytest
from conftest import number, run_benchmark, tables

pytestmark = pytest.mark.slow


def test_teaching_runs_every_step(tmp_path):
    args = ["--train-size", "16", "--max-samples", "2", "--epochs", "1", "--limit", "2", "--eval-seeds", "1000000"]
    out = run_benchmark("teaching.py", *args, "--engine", "transformers", "--workdir", str(tmp_path), codes=(0, 1))
    scores, steps = tables(out)
    assert [r[1] for r in scores[1:]] == ["base", "verified", "control"]
    assert all(0 <= number(r[2]) <= 100 and r[2].endswith("/2)") for r in scores[1:])
    assert [r[0] for r in steps[1:]] == ["generate verified", "generate control", "eval base seed 1000000",
                                         "eval verified seed 1000000", "eval control seed 1000000", "sft verified",
                                         "sft control"]  # fmt: skip
    assert all(number(r[1]) >= 0 for r in steps[1:])
    assert out.count("seed 1000000: verified over") == 2
    assert (tmp_path / "sft_verified" / "model.safetensors").exists()
