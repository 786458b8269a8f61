"""benchmarks/filter_quality.py with two short traces a language and a fifth of a second a speed measurement."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_filter_quality_prints_quality_and_speed():
    out = run_benchmark("filter_quality.py", "--traces", "2", "--seconds", "0.2", "--tokens", "256")
    found = tables(out)
    assert len(found) >= 6
    speed = found[-1]
    assert speed[0][:2] == ["filter", "candidates/s"] and len(speed) > 5
    assert all(number(r[1]) > 0 for r in speed[1:])
    alls = [r for t in found for r in t if r[0] == "**all**"]
    assert alls and all(0 <= number(x) <= 1 for r in alls for x in r[-2:])  # precision and recall
