"""benchmarks/cpu_throughput.py on 8 prompts of 256-token traces: both arms judge every candidate."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_cpu_throughput_runs_both_arms():
    [t] = tables(run_benchmark("cpu_throughput.py", "--prompts", "8", "--workers", "1", "--tokens", "256"))
    assert [r[1] for r in t[1:]] == ["32", "32"]  # 8 prompts x 4 samples, each arm
    assert all(number(r[2]) > 0 and number(r[3]) > 0 for r in t[1:])
