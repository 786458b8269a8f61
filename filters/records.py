"""Records for `factory filter`: one JSON object per line, as DESIGN.md defines them, checked and turned into
candidates.

    {"id": ..., "task": "math"|"code"|"general", "prompt": str, "reference": ..., "completion": str,
     "language": str, "finish_reason": "stop"|"length"}

`reference` is the answer for math; for code, HumanEval tests {"test", "entry_point"}, stdin/stdout cases
{"inputs", "outputs"}, or function calls {"fn_name", "inputs", "outputs"}; for general tasks a reference answer or
nothing. A record that breaks these rules is an error naming its line and field, not a silent rejection.
"""

from __future__ import annotations

from filters.base import Candidate

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
