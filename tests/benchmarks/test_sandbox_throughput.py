"""benchmarks/sandbox_throughput.py on 4 HumanEval programs, one rep: every arm passes every program."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_sandbox_throughput_runs_every_arm():
    [t] = tables(run_benchmark("sandbox_throughput.py", "--programs", "4", "--reps", "1"))
    arms = [r[0] for r in t[1:]]
    assert arms == ["plain", "plain -S -I -B", "sandbox.run", "verify_code", "verify_code, one process"]
    assert all(r[1] == "4/4" and number(r[2]) > 0 for r in t[1:])
