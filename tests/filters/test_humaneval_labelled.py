"""The code verifier on a labelled set: all 164 HumanEval canonical solutions pass, and every mutant passes exactly
when it passes its tests run plainly (benchmarks/labelled_code.py says how the labels are made)."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filters.code import verify_code
from filters.sandbox import Limits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import labelled_code  # noqa: E402

LIM = Limits(wall_s=10, cpu_s=10)  # the plain labelling runs have 2 s; the verifier gets the recipe default


def test_canonical_solutions_pass_and_mutants_fail_as_labelled():
    cases = labelled_code.cases()
    with ThreadPoolExecutor(os.cpu_count()) as ex:
        verdicts = list(ex.map(lambda case: verify_code(case[1], LIM), cases))
    wrong = [(name, should, v.reason) for (name, _, should), v in zip(cases, verdicts, strict=True)
             if v.accepted is not should]  # fmt: skip
    assert wrong == []
    canonical = [v for (name, _, _), v in zip(cases, verdicts, strict=True) if "mutant" not in name]
    assert len(canonical) == 164 and all(v.accepted for v in canonical)
    failing = [v.reason for (name, _, should), v in zip(cases, verdicts, strict=True) if not should]
    assert len(failing) >= 200  # a real test of rejection, not a handful
    assert set(failing) <= {"wrong_answer", "runtime_error", "timeout", "memory_limit"}
