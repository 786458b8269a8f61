"""Verification and format checks: every reject code, reasoning-gym's scorer, math-verify, the chain."""

from __future__ import annotations

import pytest
import reasoning_gym

from filters.base import Candidate
from filters.format import check_format
from filters.registry import FILTERS, run_chain
from filters.verify import verify

ARITHMETIC = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators=["+", "-"],
                  allow_parentheses=False, allow_negation=False)  # fmt: skip


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return list(reasoning_gym.create_dataset("basic_arithmetic", size=3, seed=0, **ARITHMETIC))


def _rg(entry: dict, text: str, think: bool = False) -> Candidate:
    return Candidate(text, "math", {"answer": entry["answer"], "reasoning_gym": entry}, think=think)


def _math(gold: str, text: str, think: bool = False) -> Candidate:
    return Candidate(text, "math", {"answer": gold}, think=think)


def test_reasoning_gym_right_and_wrong(entries):
    for e in entries:
        right = verify(_rg(e, f"The answer is {e['answer']}."))
        assert right.accepted and right.reason is None and right.scores == {"correct": 1.0}
        wrong = verify(_rg(e, f"The answer is {int(e['answer']) + 1}."))
        assert not wrong.accepted and wrong.reason == "wrong_answer"


def test_reasoning_gym_partial_credit_is_wrong(entries):
    from reasoning_gym import get_score_answer_fn

    e = next(e for e in entries if len(e["answer"]) == 1)  # e.g. "3"; "13" contains it
    padded = "1" + e["answer"]
    partial = get_score_answer_fn("basic_arithmetic")(padded, e)
    assert 0 < partial < 1  # reasoning-gym's own scorer gives partial credit here
    v = verify(_rg(e, f"The answer is {padded}"))
    assert not v.accepted and v.reason == "wrong_answer" and v.scores["correct"] == pytest.approx(partial)


def test_reasoning_gym_reads_only_the_summary(entries):
    e = entries[0]
    assert (
        verify(_rg(e, f"<think>it is {e['answer']}</think>\nThe answer is 1000.", think=True)).reason == "wrong_answer"
    )
    assert verify(_rg(e, f"<think>hm</think>\n\\boxed{{{e['answer']}}}", think=True)).accepted
    assert verify(_rg(e, f"<think>the answer is {e['answer']}", think=True)).reason == "no_answer"


@pytest.mark.parametrize(
    "gold, said, ok",
    [
        ("1/2", "0.5", True),
        ("0.5", "1/2", True),
        (r"\frac{1}{2}", "1/2", True),
        ("1/2", r"\frac{1}{2}", True),
        ("3", "3", True),
        ("3", "-3", False),
        ("-3", "3", False),
        ("5", "15", False),
        (r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}", True),
    ],
)
def test_math_with_reference(gold, said, ok):
    v = verify(_math(gold, f"So the answer is {said}."))
    assert v.accepted is ok
    assert v.reason == (None if ok else "wrong_answer")
    assert v.scores == {"correct": 1.0 if ok else 0.0}


def test_math_boxed_after_think():
    assert verify(_math("1/2", "<think>maybe 2</think>\n\\boxed{\\frac{1}{2}}", think=True)).accepted
    assert verify(_math("2", "<think>maybe 2</think>\n\\boxed{\\frac{1}{2}}", think=True)).reason == "wrong_answer"


def test_no_answer_and_no_verifier():
    assert verify(_math("2", "<think>2</think>", think=True)).reason == "no_answer"
    assert verify(_math("2", "<think>2", think=True)).reason == "no_answer"
    code = Candidate("def f(): return 1", "code", {"test": "assert f() == 1", "entry_point": "f"}, think=False)
    assert verify(code).reason == "no_code"  # the code verifier wants a fenced block
    assert verify(Candidate("hello", "general", {}, think=False)).reason == "no_verifier"
    assert verify(Candidate("The answer is 2", "math", {}, think=False)).reason == "no_verifier"  # no reference


@pytest.mark.parametrize(
    "text, finish, think, reason",
    [
        ("", "stop", True, "empty"),
        ("  \n ", "stop", False, "empty"),
        ("<think>long", "length", True, "truncated"),
        ("The answer is 4", "length", False, "truncated"),
        ("<think>no end", "stop", True, "unclosed_think"),
        ("The answer is 4", "stop", True, "unclosed_think"),
        ("<think>a</think>b</think>c", "stop", True, "unclosed_think"),
        ("<think>a<think>b</think>c", "stop", True, "unclosed_think"),
        ("<think>all reasoning</think>  \n", "stop", True, "no_summary"),
        ("<think>x</think>The answer is 4", "stop", False, "unexpected_think"),
        ("x</think>The answer is 4", "stop", False, "unexpected_think"),
        ("<think>x</think>The answer is 4", "stop", True, None),
        ("x</think>The answer is 4", "stop", True, None),  # the template opened <think> in the prompt
        ("The answer is 4", "stop", False, None),
    ],
)
def test_format_reasons(text, finish, think, reason):
    v = check_format(Candidate(text, "math", {"answer": "4"}, finish, think))
    assert v.reason == reason
    assert v.accepted is (reason is None)


def test_every_stage_is_declared_once_and_everything_else_derives_from_it():
    import inspect

    from factory.recipe import FILTERS as RECIPE_FILTERS
    from filters.registry import DECONTAM, DEDUP, JUDGE, MAIN, REWARDS, STAGES, order_problem, worker_stages
    from trainers import rewards
    from trainers.recipe import REWARDS as TRAIN_REWARDS

    assert tuple(STAGES) == RECIPE_FILTERS and set(FILTERS) == set(STAGES) - set(MAIN)
    assert all(s.check is not None for s in STAGES.values() if s.where == "worker")
    assert set(MAIN) == {JUDGE, DEDUP, DECONTAM}
    assert {STAGES[n].code for n in MAIN} == {"factory.judging", "factory.stages.Gate"}  # where each one's code is
    assert TRAIN_REWARDS == REWARDS == ("format", "accuracy", "language")
    built = rewards.reward_functions(list(REWARDS), pool=None, think=True, stop_ids=set(), language=None)
    assert [inspect.unwrap(f.func).__name__ for f in built] == ["format_reward", "accuracy_reward", "language_reward"]
    # the order a recipe lists: worker stages, then judge, then the stateful ones
    assert worker_stages(["format", "judge", "verify", "dedup"]) == ["format", "verify"]
    assert order_problem(["format", "verify", "judge", "decontam", "dedup"]) is None
    assert "'verify' must come before 'judge'" in order_problem(["format", "judge", "verify"])
    assert "'judge' must come before 'dedup'" in order_problem(["format", "dedup", "judge"])
    assert "'language' must come before 'dedup'" in order_problem(["dedup", "language"])


def test_run_chain_first_failure_wins_and_keeps_scores():
    names = ["format", "verify"]
    ok = run_chain(_math("4", "<think>2+2</think>\nThe answer is 4", think=True), names)
    assert ok.accepted and ok.reason is None and ok.scores == {"correct": 1.0}

    wrong = run_chain(_math("4", "<think>2+2</think>\nThe answer is 5", think=True), names)
    assert not wrong.accepted and wrong.reason == "wrong_answer" and wrong.scores == {"correct": 0.0}

    # format fails first: verify never runs, so there is no score
    cut = Candidate("<think>2+2</think>\nThe answer is 4", "math", {"answer": "4"}, "length", True)
    v = run_chain(cut, names)
    assert v.reason == "truncated" and v.scores == {}
    # the same candidate through verify alone passes: the order of the chain decides
    assert run_chain(cut, ["verify"]).accepted
    assert run_chain(cut, []).accepted  # no filters: nothing to reject


def test_run_chain_keeps_scores_of_earlier_filters(monkeypatch):
    from filters.base import accept, reject

    monkeypatch.setitem(FILTERS, "scored", lambda c, s: accept(length=len(c.text)))
    monkeypatch.setitem(FILTERS, "picky", lambda c, s: reject("too_plain", plain=1.0))
    v = run_chain(_math("4", "abc"), ["scored", "picky", "verify"])
    assert v == type(v)(False, "too_plain", {"length": 3, "plain": 1.0})
