"""benchmarks/generate_overhead.py on the bundled model under vLLM: 2 prompts x 2 samples of 16 tokens, one rep of
the short workload, every arm on one engine."""

from __future__ import annotations

import pytest
from conftest import number, run_benchmark, tables

pytestmark = pytest.mark.slow


def test_generate_overhead_runs_every_arm():
    args = ["--prompts", "2", "--n", "2", "--reps", "1", "--workloads", "short", "--max-num-seqs", "4"]
    out = run_benchmark("generate_overhead.py", *args, "--max-tokens", "16", "--small-batch", "1")
    arms, lengths = tables(out)
    assert [r[1] for r in arms[1:]] == ["ceiling: raw, one call", "raw, calls of 1 prompts",
                                        "factory, one round of n", "factory, rounds of 1"]  # fmt: skip
    for _, _, tokens, rate, ratio, busy, seqs in arms[1:]:
        assert 0 < number(tokens) <= 2 * 2 * 16 and number(rate) > 0 and number(ratio) > 0
        assert 0 < number(busy) <= 1 and 0 < number(seqs) <= 4  # read off the engine core in this process
    [(workload, samples, *pcts, at_max)] = lengths[1:]
    assert (workload, samples) == ("short", "8") and all(1 <= number(x) <= 16 for x in pcts)
