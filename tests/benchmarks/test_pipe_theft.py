"""benchmarks/pipe_theft.py at 3 tries: no forged pass, no process left on the host."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_pipe_theft_forges_nothing_and_leaves_nothing():
    [t] = tables(run_benchmark("pipe_theft.py", "--tries", "3"))
    assert t[0] == ["helper", "tries", "forged passes", "processes left", "slowest run (s)"]
    rows = {r[0]: r[1:] for r in t[1:]}
    assert list(rows) == ["process", "thread", "all"]
    tries, forged, left, slowest = rows["all"]
    assert (number(tries), number(forged), number(left)) == (3, 0, 0)
    assert number(slowest) < 10  # the recipe's wall limit: no run waited on a held init
