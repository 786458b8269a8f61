"""Record checking for `factory filter`: each problem names its field."""

from __future__ import annotations

from filters.records import problems, to_candidate

MATH = {"id": 1, "task": "math", "prompt": "1+1?", "reference": "2", "completion": "<think>1+1</think> \\boxed{2}"}


def test_a_good_record_has_no_problems_and_becomes_a_candidate():
    assert problems(MATH) == []
    c = to_candidate(MATH)
    assert (c.task, c.reference, c.think, c.finish_reason) == ("math", {"answer": "2"}, True, "stop")
    assert to_candidate({**MATH, "completion": "2"}).think is False  # no think block: not a reasoning trace
    assert to_candidate(MATH, think=False).think is False


def test_each_problem_names_the_field():
    assert problems([1]) == ["expected a JSON object, got list"]
    assert problems({**MATH, "completion": None}) == ["completion: missing or not a string"]
    assert problems({**MATH, "task": "poetry"}) == ["task: 'poetry' is not one of math, code, general"]
    assert problems({**MATH, "reference": None})[0].startswith("reference: a math record needs its answer")
    assert problems({**MATH, "task": "code", "reference": {"test": "x"}})[0].startswith("reference: a code record")
    assert problems({**MATH, "language": 3}) == ["language: not a string"]
    calls = {"fn_name": "f", "inputs": [[1]], "outputs": [1.5]}
    assert problems({**MATH, "task": "code", "reference": {**calls, "atol": 1e-5, "wrapped_outputs": True}}) == []
    bad = problems({**MATH, "task": "code", "reference": {**calls, "atol": -1}})
    assert bad == ["reference: atol must be a number >= 0 (the task's float tolerance), got -1"]
    two = problems({"task": "math", "reference": 1})
    assert two == ["completion: missing or not a string", "prompt: missing or not a string"]


def test_code_and_general_references():
    code = {**MATH, "task": "code", "reference": {"inputs": ["1\n"], "outputs": ["2\n"]}}
    assert problems(code) == [] and to_candidate(code).reference == {"inputs": ["1\n"], "outputs": ["2\n"]}
    general = {**MATH, "task": "general", "reference": None}
    assert problems(general) == [] and to_candidate(general).reference == {}
