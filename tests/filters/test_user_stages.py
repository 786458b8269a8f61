"""A user's own stages (`module:function` in a recipe's filters, a GRPO recipe's rewards): run in the verification
workers, their reasons and scores in the store; one that raises, hangs or returns junk costs its candidate, not
the run."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import FACTORY
from fakes import ScriptedEngine

from factory import recipe as recipes
from factory import sources
from factory.sampler import Job, sample
from factory.store import StoreReader, StoreWriter
from factory.workers import VerifyPool
from filters.base import Candidate, Verdict, reject
from filters.registry import Settings, run_chain, worker_stages
from trainers.rewards import reward_functions

HERE = "test_user_stages"  # this file's module: pytest puts its folder on sys.path, and the workers inherit it


# the stages, as a user writes them
def units_match(c: Candidate) -> Verdict | bool:
    """Rejects an answer without a unit: a chemistry lab's check."""
    if "mol" in c.text:
        return True
    return reject("no_unit", unit=None)


def says_no(c: Candidate) -> bool:
    return "mol" in c.text


def length_score(c: Candidate) -> float:
    return len(c.text) / 100


def explodes(c: Candidate):
    raise ZeroDivisionError("the lab's checker divided by zero")


def hangs(c: Candidate):
    time.sleep(120)


def junk(c: Candidate):
    return {"a set", "is not a verdict"}


def bad_scores(c: Candidate) -> Verdict:
    return Verdict(True, None, {"when": object()})  # the store cannot hold it


def rewrites(c: Candidate) -> bool:
    """A stage that rewrites the answer it was given, into the reference's, and passes it."""
    c.text = f"The answer is {c.reference.get('answer')}."
    c.reference["answer"] = "nothing"
    return True


def test_a_stage_that_rewrites_its_candidate_changes_nothing_the_later_stages_see():
    wrong = Candidate("<think>hm</think>\nThe answer is 41.", "math", {"answer": "42"})
    v = run_chain(wrong, [f"{HERE}:rewrites", "format", "verify"])
    assert (v.accepted, v.reason) == (False, "wrong_answer")  # verify saw 41 against 42, as the model wrote it
    assert wrong.text.endswith("41.") and wrong.reference == {"answer": "42"}
    seen = []
    run_chain(wrong, [f"{HERE}:rewrites"], Settings(prepare=seen.append))
    assert seen == [wrong.text]  # decontamination and dedup work on the text the model wrote


def test_each_kind_of_return_value_is_a_verdict_and_nothing_else_passes():
    c = Candidate("2 mol of water", "general")
    bare = Candidate("2 of water", "general")
    assert run_chain(c, [f"{HERE}:units_match"]) == Verdict(True)
    assert run_chain(bare, [f"{HERE}:units_match"]) == Verdict(False, "no_unit", {"unit": None})
    assert run_chain(bare, [f"{HERE}:says_no"]) == Verdict(False, "says_no")  # False: the function names the reason
    assert run_chain(c, [f"{HERE}:length_score"]) == Verdict(True, None, {"length_score": 0.14})
    for name, error in (("explodes", "ZeroDivisionError: the lab's checker divided by zero"),
                        ("junk", "returned set"), ("bad_scores", "returned Verdict")):  # fmt: skip
        v = run_chain(c, [f"{HERE}:{name}"])
        assert (v.accepted, v.reason, v.scores["stage"]) == (False, "stage_error", f"{HERE}:{name}")
        assert v.scores["error"].startswith(error)
    v = run_chain(c, [f"{HERE}:nowhere"])  # a function the module lacks: said when it runs too
    assert v.reason == "stage_error" and "has no function 'nowhere'" in v.scores["error"]


def test_a_recipe_names_user_stages_and_a_wrong_one_is_explained():
    r = recipes.parse({"source": {"kind": "jsonl", "path": "x.jsonl"}, "filters": ["format", f"{HERE}:units_match"]})
    assert worker_stages(r.filters) == ["format", f"{HERE}:units_match"]
    cases = {"no_such_module_here:check": "importing no_such_module_here failed",
             f"{HERE}:nowhere": "has no function 'nowhere'", "my lab:check": "is not module:function",
             "verfy": "is not a filter"}  # fmt: skip
    for name, said in cases.items():
        with pytest.raises(recipes.FactoryError, match="filters\\[1\\]") as e:
            recipes.parse({"source": {"kind": "jsonl", "path": "x.jsonl"}, "filters": ["format", name]})
        assert said in str(e.value)
    with pytest.raises(recipes.FactoryError, match="must come before"):  # a worker stage after dedup, as a built-in
        recipes.parse({"source": {"kind": "jsonl", "path": "x.jsonl"}, "filters": ["dedup", f"{HERE}:units_match"]})


def answers(user: str, k: int) -> str:
    """Per prompt: an answer with a unit, one without, and one each way a stage misbehaves."""
    return ["It is 2 mol.", "It is 2.", "It is 3 mol, boom.", "It is 4 mol, wait.", "It is 5 mol, junk."][k % 5]


def lab(c: Candidate):
    """One stage that misbehaves on some answers: raises, hangs or returns junk; else checks the unit."""
    if "boom" in c.text:
        raise RuntimeError("boom")
    if "wait" in c.text:
        time.sleep(120)
    if "junk" in c.text:
        return ["junk"]
    return units_match(c)


def test_a_run_with_user_stages_stores_their_reasons_and_goes_on_past_the_broken_ones(tmp_path):
    prompts = [sources.make("jsonl:x", "general", f"How much water in flask {i}?", {}) for i in range(3)]
    r = recipes.parse({"source": {"kind": "jsonl", "path": "x.jsonl"}, "prompt": {"think": False},
                       "filters": ["format", f"{HERE}:lab", f"{HERE}:length_score"],
                       "rejection": {"accept_per_prompt": 5, "max_samples": 5, "round_size": 5}})  # fmt: skip
    with StoreWriter(tmp_path / "s.duckdb") as store:
        run_id = store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})
        with VerifyPool(2, timeout=3) as pool:
            tally = sample(Job(r, prompts, store, run_id), ScriptedEngine(answers), pool)
        rows = store.query("SELECT text, accepted, reason, scores FROM candidates ORDER BY prompt_id, sample_index")[1]
    assert tally.candidates == 15 and len(rows) == 15  # every candidate judged and stored: the run went on
    by_text = {}
    for text, accepted, reason, scores in rows:
        by_text.setdefault(text, set()).add((accepted, reason, json.dumps(json.loads(scores), sort_keys=True)))
    ok = {(True, None, json.dumps({"length_score": 0.12}))}
    assert by_text["It is 2 mol."] == ok  # both stages ran on it, the second's score kept
    assert by_text["It is 2."] == {(False, "no_unit", json.dumps({"unit": None}))}
    boom = {(False, "stage_error", json.dumps({"error": "RuntimeError: boom", "stage": f"{HERE}:lab"}))}
    assert by_text["It is 3 mol, boom."] == boom
    assert by_text["It is 4 mol, wait."] == {(False, "verify_timeout", "{}")}  # killed at the workers' time limit
    (junked,) = by_text["It is 5 mol, junk."]
    assert junked[:2] == (False, "stage_error") and "returned list" in junked[2]


def test_a_user_stage_module_is_found_in_the_current_directory(tmp_path):
    """As a user runs it: `factory generate` from the folder holding their module, a replayed model."""
    (tmp_path / "mylab").mkdir()
    (tmp_path / "mylab" / "__init__.py").write_text("")
    (tmp_path / "mylab" / "checks.py").write_text(
        "from filters.base import reject\n\ndef units_match(c):\n    return 'mol' in c.text or reject('no_unit')\n"
    )
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "How much water?"}) + "\n")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"prompt": "How much water?", "completion": t}) + "\n"
                                              for t in ("It is 2 mol.", "It is 2.")))  # fmt: skip
    (tmp_path / "r.yaml").write_text(
        "source: {kind: jsonl, path: p.jsonl, task: general}\nengine: {kind: replay, replay: a.jsonl}\n"
        "prompt: {think: false}\nverify: {workers: 1}\nfilters: [format, mylab.checks:units_match]\n"
        "rejection: {accept_per_prompt: 2, max_samples: 2, round_size: 2}\n"
    )
    res = subprocess.run([FACTORY, "generate", "r.yaml", "--db", "s.duckdb"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    with StoreReader(tmp_path / "s.duckdb") as store:
        rows = store.query("SELECT text, accepted, reason FROM candidates ORDER BY sample_index")[1]
    assert rows == [("It is 2 mol.", True, None), ("It is 2.", False, "no_unit")]


def test_a_user_reward_scores_through_the_workers():
    with VerifyPool(1, timeout=3, settings=Settings()) as pool:
        score, unit, broken = reward_functions([f"{HERE}:length_score", f"{HERE}:units_match", f"{HERE}:explodes"],
                                               pool=pool, think=False, stop_ids=set(), language=None)  # fmt: skip
        completions = [[{"role": "assistant", "content": "2 mol"}], [{"role": "assistant", "content": "2"}]]
        kw = {"task": ["general"] * 2, "reference": ["{}"] * 2}
        assert score(completions, **kw) == [0.05, 0.01]
        assert unit(completions, **kw) == [1.0, 0.0]
        assert broken(completions, **kw) == [None, None]  # it said nothing about them
    assert (score.__name__, unit.__name__) == ("length_score_reward", "units_match_reward")  # TRL logs by name
