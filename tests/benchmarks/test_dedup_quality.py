"""benchmarks/dedup_quality.py on every 20th labelled pair and stream text, one setting: each of its tables."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_dedup_quality_prints_its_tables():
    args = ["--ngrams", "3", "--thresholds", "0.6", "--stream-ngrams", "3", "--stream-thresholds", "0.6"]
    grid_p, kinds_p, grid_r, kinds_r, loose, streams, perms = tables(
        run_benchmark("dedup_quality.py", *args, "--every", "20")
    )
    for grid in (grid_p, grid_r):
        [(ngram, threshold, precision, recall, f1, exact)] = grid[1:]
        assert (ngram, threshold) == ("3", "0.6") and all(0 <= number(x) <= 1 for x in (precision, recall, f1, exact))
    assert {r[1] for r in kinds_p[1:]} == {"yes", "no"} and {r[1] for r in kinds_r[1:]} == {"yes", "no"}
    assert len(loose) > 2 and len(streams) > 10
    assert [(r[0], r[1]) for r in perms[1:]] == [(t, p) for t in ("prompt", "response") for p in ("64", "128", "256")]
