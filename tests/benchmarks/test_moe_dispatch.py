"""benchmarks/moe_dispatch.py at a tiny width, and its balance part on the demo store for 4 steps."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_moe_dispatch_times_every_arm_and_trains_with_the_bias(demo_store):
    args = ["--tokens", "64", "--hidden", "32", "--width", "16", "--repeats", "1", "--steps", "4", "--speeds", "0.01"]
    dispatch, balance = tables(run_benchmark("moe_dispatch.py", "--db", str(demo_store), *args))
    assert [r[0] for r in dispatch[1:]] == ["8", "16", "64"]
    assert all(number(x) > 0 for r in dispatch[1:] for x in r[2:5])
    [(speed, steps, first, last, cv, loss, bias, seconds)] = balance[1:]
    assert (speed, steps) == ("0.01", "4") and number(bias) > 0 and number(loss) > 0
