"""benchmarks/sampling_efficiency.py on the bundled model under vLLM: 3 prompts, up to 2 samples of 16 tokens, every
arm against the oracle and the ceiling on one engine."""

from __future__ import annotations

import pytest
from conftest import number, run_benchmark, tables

pytestmark = pytest.mark.slow


def test_sampling_efficiency_runs_every_arm():
    args = ["--prompts", "3", "--round-sizes", "2", "--max-samples", "2", "--max-num-seqs", "4", "--max-tokens", "16"]
    [t] = tables(run_benchmark("sampling_efficiency.py", *args))
    names = [r[0] for r in t[1:]]
    assert names[0].startswith("oracle") and names[-1].startswith("raw vLLM") and "fixed N=2" in names
    assert "adaptive rounds of 2" in names and len(names) == 6
    fixed = t[1 + names.index("fixed N=2")]
    assert number(fixed[1]) == 6  # fixed N draws every sample: 3 prompts x 2
    for row in t[2:]:  # the arms: samples drawn, tokens, a rate against the ceiling
        assert 3 <= number(row[1]) <= 6 and number(row[2]) > 0 and number(row[6]) > 0 and number(row[7]) > 0
