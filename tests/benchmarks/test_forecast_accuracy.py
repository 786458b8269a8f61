"""benchmarks/forecast_accuracy.py on the bundled model: one tiny job, a pilot of half its prompts, then the rest."""

from __future__ import annotations

import pytest
from conftest import number, run_benchmark, tables

pytestmark = pytest.mark.slow


def test_forecast_accuracy_compares_every_quantity():
    out = run_benchmark("forecast_accuracy.py", "--jobs", "demo:6", "--pilot", "50%", "--set", "sampling.max_tokens=16")
    [t] = tables(out)
    assert [r[0] for r in t[1:]] == ["samples", "prompt_tokens", "tokens", "truncated", "examples", "seconds here"]
    for _, forecast, interval, actual, error, inside in t[1:]:
        lo, hi = (number(x) for x in interval.split(" - "))
        assert lo <= number(forecast) <= hi and error.endswith("%")
        assert inside == ("yes" if lo <= number(actual) <= hi else "no")
    samples = t[1]
    assert 6 <= number(samples[3]) <= 6 * 8  # the job drew between one and max_samples per prompt
    assert "demo: 6 prompts, pilot 3 (50%)" in out and "goal (within 15% on samples, tokens, examples):" in out
