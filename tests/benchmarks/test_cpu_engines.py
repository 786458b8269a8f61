"""benchmarks/cpu_engines.py on 2 prompts of the demo: the llama.cpp arm as built here and as on a CPU without
AVX-512, each the real engine in its own process."""

from __future__ import annotations

import pytest
from conftest import number, run_benchmark, tables

pytestmark = pytest.mark.slow


def test_cpu_engines_runs_each_arm_and_names_the_cpu():
    out = run_benchmark("cpu_engines.py", "--limit", "2", "--engines", "llamacpp", "--isa", "both")
    [cpu] = [line for line in out.splitlines() if line.startswith("CPU: ")]
    assert "cores" in cpu and "avx512f" in cpu
    [t] = tables(out)
    assert [r[:2] for r in t[1:]] == [["llamacpp", "native"], ["llamacpp", "avx2"]]
    for _, _, tokens, secs, rate, load, version in t[1:]:
        assert number(tokens) > 0 and number(secs) > 0 and number(load) > 0 and "llama-cpp-python" in version
        assert number(rate) == pytest.approx(number(tokens) / number(secs), rel=0.02)
