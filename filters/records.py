"""Records for `factory filter`: one JSON object per line, as below (and in docs/commands.md), checked and turned into
candidates.

    {"id": ..., "task": "math"|"code"|"general", "prompt": str, "reference": ..., "completion": str,
     "language": str, "finish_reason": "stop"|"length"}

`reference` is the answer for math; for general tasks a reference answer or nothing; for code, one of three test
formats (filters/code.py runs them):

- HumanEval tests {"test", "entry_point"[, "prefix"]}: `prefix` is the prompt's own code (imports, helpers the tests
  call, such as HumanEval/32's `poly`); with an entry_point, that function alone comes from the answer, and a name
  the tests use that neither the prefix nor the tests define makes the record broken (bad_reference), not a helper
  for the answer to supply. entry_point null: MBPP-style asserts that call the answer's functions by name; a function
  named like a builtin (`pow`, `sum`) needs its entry_point, and tests that never call the answer (a check() with no
  entry_point) are broken too.
- stdin/stdout cases {"inputs", "outputs"}.
- function calls {"fn_name", "inputs", "outputs"}, optionally with the task's float tolerance, `atol` (absolute, as
  LeetCode states it: "answers within 1e-5 of the actual answer") and/or `rtol` (relative to the expected value);
  without them a float answer must be within 1e-9. `"wrapped_outputs": true` where each expected value is wrapped in
  a one-element list that the answer may return unwrapped (APPS, TACO); without it [x] is a list.

A code record may carry `"solution"`, a program its tests must pass (else bad_reference). Before a code record's
pass is trusted, its tests run once against trivial programs (filters/weak_tests.py): tests that one of them passes
make the pass `weak_tests` (factory.curate.TestChecks).

A record that breaks these rules is an error naming its line and field, not a silent rejection.
"""

from __future__ import annotations

from filters.base import Candidate
from filters.code import call_match

TASKS = ("math", "code", "general")
CODE_FORMATS = (("test", "entry_point"), ("fn_name", "inputs", "outputs"), ("inputs", "outputs"))


def problems(rec) -> list[str]:
    """What is wrong with a record, as 'field: problem' strings (empty when it is fine)."""
    if not isinstance(rec, dict):
        return [f"expected a JSON object, got {type(rec).__name__}"]
    out = []
    for key in ("completion", "prompt"):
        if not isinstance(rec.get(key), str):
            out.append(f"{key}: missing or not a string")
    task, ref = rec.get("task"), rec.get("reference")
    if task not in TASKS:
        out.append(f"task: {task!r} is not one of {', '.join(TASKS)}")
    elif task == "math" and not isinstance(ref, (str, int, float)):
        out.append("reference: a math record needs its answer (a string or a number)")
    elif task == "code" and not (isinstance(ref, dict) and any(all(k in ref for k in f) for f in CODE_FORMATS)):
        out.append(
            "reference: a code record needs tests: {test, entry_point}, {inputs, outputs} or {fn_name, inputs, outputs}"
        )
    elif task == "code" and "fn_name" in ref:
        try:
            call_match(ref)
        except ValueError as e:
            out.append(str(e))
    elif task == "general" and ref is not None and not isinstance(ref, str):
        out.append("reference: for a general record, a reference answer string or null")
    for key in ("language", "finish_reason"):
        if key in rec and rec[key] is not None and not isinstance(rec[key], str):
            out.append(f"{key}: not a string")
    return out


def to_candidate(rec: dict, think: bool | None = None) -> Candidate:
    """`think=None` reads it off the completion: a think tag, even unclosed, means the model was reasoning."""
    task, ref = rec["task"], rec.get("reference")
    if task == "code":
        reference = dict(ref)
    else:
        reference = {"answer": str(ref)} if ref is not None else {}
    if think is None:
        think = "<think>" in rec["completion"] or "</think>" in rec["completion"]
    return Candidate(rec["completion"], task, reference, rec.get("finish_reason") or "stop", think, rec.get("language"))
