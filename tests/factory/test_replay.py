"""`engine.kind: replay`: recorded completions through the whole pipeline, as `factory generate` runs them.

The recording (tests/factory/data/demo_candidates.jsonl) is `factory export --what candidates` of a real demo run
(the bundled SmolLM2 on vLLM, settings in conftest.DEMO_SETTINGS) with each candidate's verdict; replaying it must
give every candidate the verdict the real run gave, through the real workers, dedup and store.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import DEMO_RECORDING, DEMO_SETTINGS, REPLAY, rows, run_cli

from factory.engines.replay_engine import ReplayEngine
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig


def _recorded() -> list[dict]:
    return [json.loads(line) for line in DEMO_RECORDING.read_text().splitlines()]


def test_replaying_a_real_run_gives_every_candidate_its_verdict(demo_store):
    want = sorted((r["prompt_id"], r["sample_index"], r["completion"], r["accepted"], r["reason"]) for r in _recorded())
    got = rows(demo_store, "SELECT prompt_id, sample_index, text, accepted, reason FROM candidates ORDER BY ALL")
    assert got == want
    assert {r for _, _, _, _, r in got} == {None, "wrong_answer", "near_duplicate"}  # the cases the tests rely on
    [(kind, model)] = rows(demo_store, "SELECT engine, model FROM runs")
    assert kind == "replay" and model == "smollm2-135m-instruct"


def test_a_prompt_whose_recording_runs_out_ends_there(tmp_path, demo_recipe):
    """Prompts get their recorded completions in order and stop when they run out; a resumed replay draws nothing
    twice; a prompt with no recording is ended with no candidate."""
    recs = [r for r in _recorded() if not r["accepted"]]  # only wrong answers: no prompt is ever solved
    by_prompt: dict[str, list] = {}
    for r in recs:
        by_prompt.setdefault(r["prompt"], []).append(r)
    short = min(by_prompt, key=lambda p: len(by_prompt[p]))
    recording = tmp_path / "rec.jsonl"
    recording.write_text("".join(json.dumps(r) + "\n" for r in recs))
    db = tmp_path / "f.duckdb"
    args = ("generate", str(demo_recipe), "--db", str(db), *DEMO_SETTINGS, "--set", "engine.kind=replay",
            "--set", f"engine.replay={recording}")  # fmt: skip
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    got = rows(
        db, "SELECT p.prompt, count(*), max(sample_index) FROM candidates JOIN prompts p USING (prompt_id) GROUP BY 1"
    )
    assert {p: n for p, n, _ in got} == {p: min(len(v), 8) for p, v in by_prompt.items()}
    assert all(top == n - 1 for _, n, top in got) and len(by_prompt[short]) < 8
    [(n_prompts,)] = rows(db, "SELECT count(*) FROM prompts")
    assert n_prompts == len(by_prompt)  # the 8th prompt had only an accepted answer recorded: nothing to store
    again = run_cli(*args)
    assert again.returncode == 0 and "(resumed)" in again.stderr and "(0 drawn now)" in again.stderr
    assert rows(db, "SELECT count(*) FROM candidates") == [(sum(n for _, n, _ in got),)]
    fresh = run_cli(*args, "--new-run")  # the same recipe, yet a run of its own beside the first, drawn afresh
    assert fresh.returncode == 0 and "(resumed)" not in fresh.stderr, fresh.stderr[-2000:]
    assert rows(db, "SELECT count(*), count(DISTINCT recipe_hash) FROM runs") == [(2, 1)]
    assert rows(db, "SELECT count(DISTINCT run_id) FROM candidates") == [(2,)]
    assert rows(db, "SELECT count(*) FROM candidates") == [(2 * sum(n for _, n, _ in got),)]


def test_a_bad_recording_is_named(tmp_path, demo_recipe):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Calculate 1 + 5."}\n')
    lying = tmp_path / "lying.jsonl"
    lying.write_text('{"prompt": "p", "text": "6"}\n{"prompt": "p", "text": "6", "n_tokens": -5}\n')
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"prompt": "p", "text": "6", "finish_reason": "done"}\n')
    cases = [(tmp_path / "none.jsonl", "is not a file"),
             (lying, f"{lying}:2: n_tokens and n_prompt_tokens must be whole numbers"),
             (odd, f"{odd}:1: finish_reason must be stop or length")]  # fmt: skip
    for path, says in cases:
        with pytest.raises(FactoryError, match=re.escape(says)):
            ReplayEngine("m", SamplingConfig(), EngineConfig(kind="replay", replay=str(path)), seed=0)
    # the command names it as it does any mistake: one line, no traceback
    res = run_cli("generate", str(demo_recipe), "--db", str(tmp_path / "f.duckdb"), *REPLAY[:2], "--set",
                  f"engine.replay={bad}")  # fmt: skip
    assert res.returncode == 2 and f"{bad}:1: a record needs" in res.stderr and "Traceback" not in res.stderr
    recipe = tmp_path / "r.yaml"
    raw = yaml.safe_load(demo_recipe.read_text()) | {"engine": {"kind": "replay"}}
    recipe.write_text(yaml.safe_dump(raw))
    res = run_cli("generate", str(recipe), "--db", str(tmp_path / "f.duckdb"))
    assert res.returncode == 2 and "engine.replay: required" in res.stderr
    assert rows(tmp_path / "f.duckdb", "SELECT count(*) FROM runs") == [(0,)]  # no run was started


def test_a_replay_run_never_asks_its_replay_to_judge(monkeypatch, demo_recipe):
    """Even when judge.model names the run's model, the judge is a real engine (vLLM), never the replay."""
    from factory import engines, judging, models
    from factory import recipe as recipes

    r = recipes.load(demo_recipe, [*REPLAY[1::2], "filters=[format,judge]", "judge.model=smollm2-135m-instruct"])
    built = []
    monkeypatch.setattr(engines, "build", lambda rec, path, seed: built.append(rec.engine.kind) or object())
    monkeypatch.setattr(models, "resolve", lambda name: name)
    replay = object()  # the run's replay engine
    judge = judging.build(r, replay)
    assert built == ["vllm"] and judge.engine is not replay


def test_the_stream_of_an_engine_that_generates_lists_counts_what_it_was_asked(tmp_path):
    """An engine with no stream of its own (replay, transformers) is driven one `generate` at a time; its stream
    counts the samples asked for until their request comes back, even one that came back short."""
    from factory import engines
    from factory.engines.replay_engine import ReplayEngine
    from factory.recipe import EngineConfig, SamplingConfig

    recording = tmp_path / "rec.jsonl"
    recording.write_text("".join(json.dumps({"prompt": p, "text": f"{p}{i}"}) + "\n" for p in "ab" for i in range(3)))
    stream = engines.stream(ReplayEngine("m", SamplingConfig(), EngineConfig(replay=str(recording)), 0))
    assert isinstance(stream, engines.Batched)
    stream.add("a", engines.Request([], 2, "a", 0))
    stream.add("b", engines.Request([], 4, "b", 1))  # two of the three recorded are left from sample 1 on
    assert (stream.unfinished, stream.samples) == (2, 6)
    got = {}
    while stream.unfinished:
        got.update(stream.poll())
    stream.close()
    assert stream.samples == 0
    assert {k: [c.text for c in v] for k, v in got.items()} == {"a": ["a0", "a1"], "b": ["b1", "b2"]}
