"""benchmarks/dedup_speed.py on 40 short traces and 2,000 stored signatures: every arm finds the same copies."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_dedup_speed_arms_agree():
    arms, load = tables(run_benchmark("dedup_speed.py", "--texts", "40", "--words", "300", "--stored", "2000"))
    assert len(arms) == 5 and len({r[1] for r in arms[1:]}) == 1 and number(arms[1][1]) >= 1  # the same copies found
    assert all(number(r[2]) > 0 for r in arms[1:])
    assert [r[0] for r in load[1:]] == [
        "Deduper.load from DuckDB (2,000 rows)",
        "MinHashLSH.insert (2,000 signatures in memory)",
    ]
