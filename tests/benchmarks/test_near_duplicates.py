"""benchmarks/near_duplicates.py writes the labelled set it is run for (to a folder of the test's, not data/)."""

from __future__ import annotations

import json

from conftest import run_benchmark


def test_near_duplicates_writes_labelled_pairs(tmp_path):
    out = tmp_path / "pairs.jsonl"
    said = run_benchmark("near_duplicates.py", "--out", str(out))
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert said.strip() == f"{len(pairs)} pairs -> {out}" and len(pairs) > 1000
    assert {p["length"] for p in pairs} == {"prompt", "response"}
    assert {p["duplicate"] for p in pairs} == {True, False} and all(p["a"] != p["b"] for p in pairs)
    assert {"edit_5", "numbers", "truncated", "other_sample"} <= {p["kind"] for p in pairs}
