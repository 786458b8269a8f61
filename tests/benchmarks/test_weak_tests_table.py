"""benchmarks/weak_tests.py on HumanEval's first 35 problems: HumanEval/34's tests are its docstring's one example."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_weak_tests_flags_humaneval_34_alone():
    out = run_benchmark("weak_tests.py", "--limit", "35")
    counts, flagged = tables(out)
    head, row = counts[0], dict(zip(counts[0], counts[1], strict=True))
    assert head[:3] == ["benchmark", "problems", "flagged weak"] and row["benchmark"] == "HumanEval"
    assert number(row["problems"]) == 35 and number(row["flagged weak"]) == 1 and number(row["by constant"]) == 1
    assert number(row["bad_reference"]) == 0 and number(row["sandbox runs"]) >= 35 * 6
    assert [r[1:3] for r in flagged[1:]] == [["HumanEval/34", "constant([0, 2, 3, 5, 9, 123])"]]
    assert "lookup" in flagged[1][3] and "MBPP: not measured" in out
