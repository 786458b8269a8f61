"""benchmarks/labelled_code.py on the first 3 HumanEval problems: their reference solutions and mutants, labelled."""

from __future__ import annotations

import re

from conftest import run_benchmark


def test_labelled_code_counts_its_cases():
    out = run_benchmark("labelled_code.py", "--problems", "3")
    canonical, mutants, same, fail = map(int, re.fullmatch(
        r"(\d+) reference solutions, (\d+) mutants \((\d+) behave the same on the tests, (\d+) fail them\)\n", out
    ).groups())  # fmt: skip
    assert canonical == 3 and 0 < mutants <= 6 and same + fail == mutants
