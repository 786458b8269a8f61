"""benchmarks/teaching.py through every step at a tiny size, each a real `factory` command: generation of the
verified and the control sets (the transformers engine: it starts in seconds), SFT of the bundled model on each,
evaluation of the three models. Its goals cannot be met on 2 problems: it says so, and exits 1 unless by chance."""

from __future__ import annotations

import hashlib
import json

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


def test_teaching_on_gsm8k_runs_every_step(tmp_path, monkeypatch):
    """--problems gsm8k on a GSM8K of four made-up problems in GSM8K's layout (a manifest of the test's own): the
    registry's source for training, its test split with the training recipe's prompt for the eval."""
    files, manifest = tmp_path / "files", {"gsm8k": {"title": "GSM8K", "task": "math", "license": "MIT (a test)",
                                                     "fields": {"problem": "question", "solution": "answer"},
                                                     "answer_from": "hashes", "splits": {}}}  # fmt: skip
    for split, offset in (("train", 0), ("test", 50)):
        rows = [
            {
                "question": f"Tom has {a + offset} apples and gets {a} more. How many apples does he have now?",
                "answer": f"{a + offset} + {a} = {2 * a + offset}\n#### {2 * a + offset}",
            }
            for a in range(1, 5)
        ]
        path = files / "gsm8k" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        manifest["gsm8k"]["splits"][split] = {"file": f"gsm8k/{split}.jsonl", "rows": 4,
                                              "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                              "origin": {"repo": "a/b", "commit": "0" * 40, "path": "x"}}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("FACTORY_BENCHMARKS_MANIFEST", str(tmp_path / "manifest.json"))
    monkeypatch.setenv("FACTORY_BENCHMARKS", str(files))
    args = ["--problems", "gsm8k", "--train-size", "4", "--max-samples", "2", "--epochs", "1", "--limit", "2"]
    out = run_benchmark(
        "teaching.py", *args, "--engine", "transformers", "--workdir", str(tmp_path / "w"), timeout=1500
    )
    scores, steps, gsm = tables(out)
    assert [r[0] for r in gsm[1:]] == ["base", "verified", "control"]
    assert all(r[1].endswith("/2)") and 0 <= number(r[1]) <= 100 and "-" in r[2] for r in gsm[1:])
    assert "eval base seed 0" in [r[0] for r in steps[1:]] and "verified over" not in out
