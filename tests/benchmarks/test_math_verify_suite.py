"""benchmarks/math_verify_suite.py on a checkout holding one test file of Math-Verify's form: its literal rows come
out with the options that are not math-verify's defaults, and a row's policy note survives the rewrite."""

from __future__ import annotations

import json

from conftest import run_benchmark

TESTS = """
import pytest


@pytest.mark.parametrize("gold,pred,expected", [("1", "1.0", True), ("1,22", "1.22", False), (f"{2}", "2", True)])
def test_number_extraction(gold, pred, expected):
    assert compare_strings(gold, pred, match_types=["expr"]) == expected


@pytest.mark.parametrize("gold,pred,expected", [("$x$", "$x$", 1)])
def test_latex(gold, pred, expected):
    assert compare_strings(gold, pred, precision=6) == expected


@pytest.mark.parametrize("a", [1])
def test_something_else(a):
    assert a
"""


def test_math_verify_suite_extracts_literal_rows(tmp_path):
    (tmp_path / "checkout" / "tests").mkdir(parents=True)
    (tmp_path / "checkout" / "tests" / "test_all.py").write_text(TESTS)
    out = tmp_path / "suite.jsonl"
    kept = {"gold": "1,22", "answer": "1.22", "expected": False, "source": "tests/test_all.py::test_number_extraction",
            "options": {"match_types": ["expr"]}, "policy": "decimal_comma", "note": "ours"}  # fmt: skip
    out.write_text(json.dumps(kept) + "\n")
    said = run_benchmark("math_verify_suite.py", str(tmp_path / "checkout"), "--out", str(out))
    assert said.strip() == f"3 cases (0 repeats, 1 non-literal rows left out) -> {out}"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["gold"], r["answer"], r["expected"]) for r in rows] == [("1", "1.0", True), ("1,22", "1.22", False),
                                                                      ("$x$", "$x$", True)]  # fmt: skip
    assert rows[1] == kept and rows[0]["options"] == {"match_types": ["expr"]} and rows[2]["options"] == {}
