"""The transformers fallback engine on the real bundled SmolLM2-135M (CPU here, CUDA where present)."""

from __future__ import annotations

import pytest
from conftest import rows, run_cli

from factory import models
from factory.engines import Request
from factory.engines.hf_engine import TransformersEngine
from factory.recipe import EngineConfig, SamplingConfig

pytestmark = pytest.mark.slow


def test_samples_n_completions_per_request():
    sampling = SamplingConfig(temperature=0.7, top_p=0.95, max_tokens=12)
    engine = TransformersEngine(models.resolve("smollm2-135m-instruct"), sampling, EngineConfig(batch_size=3), seed=0)
    reqs = [
        Request([{"role": "user", "content": "What is 2 + 3? Give only the final answer."}], 2),
        Request([{"role": "user", "content": "Write a long story about the sea."}], 3),
    ]
    out = engine.generate(reqs)
    assert [len(o) for o in out] == [2, 3]
    for comps in out:
        for c in comps:
            assert 0 < c.n_tokens <= 12 and c.finish_reason in ("stop", "length") and c.n_prompt_tokens > 10
    assert any(c.finish_reason == "length" and c.n_tokens == 12 for c in out[1])  # a story does not fit 12 tokens
    assert len({c.text for c in out[1]}) > 1  # sampled, not greedy copies


def test_generate_with_transformers_engine(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(demo_recipe), "--db", str(db), "--limit", "3", "--set", "engine.kind=transformers",
                  "--set", "rejection.max_samples=2")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert rows(db, "SELECT engine, status FROM runs") == [("transformers", "complete")]
    assert rows(db, "SELECT count(DISTINCT prompt_id), min(n_tokens) > 0 FROM candidates") == [(3, True)]


@pytest.mark.gpu
def test_transformers_engine_on_cuda():
    engine = TransformersEngine(
        models.resolve("smollm2-135m-instruct"), SamplingConfig(max_tokens=16), EngineConfig(), seed=0
    )
    assert engine.device == "cuda" and next(engine.model.parameters()).is_cuda
    [[a, b]] = engine.generate([Request([{"role": "user", "content": "Name a color."}], 2)])
    assert a.n_tokens > 0 and b.n_tokens > 0
