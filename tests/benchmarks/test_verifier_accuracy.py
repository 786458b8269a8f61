"""benchmarks/verifier_accuracy.py on the first 8 cases of each math set and 8 HumanEval problems."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_verifier_accuracy_prints_every_section():
    out = run_benchmark("verifier_accuracy.py", "--limit", "8")
    assert "## Math: 8 labelled pairs" in out and "## Math-Verify's test suite: 8 cases" in out
    assert "## Code: " in out and "skipped" not in out
    summaries = [t for t in tables(out) if t[0][:2] == ["verifier", "cases"]]
    assert len(summaries) == 3
    for t in summaries:
        for r in t[1:]:
            assert number(r[1]) > 0 and all(number(x) >= 0 for x in r[2:])
