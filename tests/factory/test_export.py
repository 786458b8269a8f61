"""`factory export` on a store made by a real demo run: examples for TRL, candidates, pass-rate windows, shards."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import rows, run_cli

pytestmark = pytest.mark.slow


def _export(db, out, *args):
    res = run_cli("export", "--db", str(db), "--out", str(out), *args, timeout=120)
    assert res.returncode == 0, res.stderr
    return res


def test_examples_in_the_chat_format_trl_reads(demo_store, tmp_path):
    from trl.data_utils import is_conversational

    out = tmp_path / "sft.parquet"
    _export(demo_store, out)
    table = pq.read_table(out)
    assert table.num_rows == rows(demo_store, "SELECT count(*) FROM examples")[0][0] > 0
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    for row in table.to_pylist():
        assert is_conversational(row)
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    # JSONL, rows chosen by SQL, columns chosen
    out = tmp_path / "sft.jsonl"
    _export(demo_store, out, "--where", "n_tokens < 12", "--columns", "messages,n_tokens")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == rows(demo_store, "SELECT count(*) FROM examples WHERE n_tokens < 12")[0][0]
    assert all(set(r) == {"messages", "n_tokens"} and r["n_tokens"] < 12 for r in lines)


def test_rejected_candidates_and_pass_rate_windows(demo_store, tmp_path):
    out = tmp_path / "rejected.jsonl"
    _export(demo_store, out, "--what", "rejected")
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(got) == rows(demo_store, "SELECT count(*) FROM candidates WHERE NOT accepted")[0][0] > 0
    assert all(not r["accepted"] and r["reason"] and r["completion"] and r["prompt"] for r in got)

    # prompts for GRPO: a pass rate in a window, as open-r1 picks them
    out = tmp_path / "grpo.parquet"
    _export(demo_store, out, "--what", "prompts", "--min-pass-rate", "0.2", "--max-pass-rate", "0.8")
    got = pq.read_table(out).to_pylist()
    want = rows(demo_store, """SELECT prompt_id, avg(accepted::INT) FROM candidates GROUP BY 1
                               HAVING avg(accepted::INT) BETWEEN 0.2 AND 0.8 ORDER BY 1""")  # fmt: skip
    assert [(r["prompt_id"], r["pass_rate"]) for r in got] == want
    assert all(r["passed"] / r["samples"] == r["pass_rate"] and r["answer"] for r in got)
    # the window works on examples too: examples of those prompts only
    out = tmp_path / "mid.jsonl"
    _export(demo_store, out, "--min-pass-rate", "0.2", "--max-pass-rate", "0.8", "--columns", "prompt_id")
    assert {json.loads(line)["prompt_id"] for line in out.read_text().splitlines()} <= {p for p, _ in want}


def test_shards_past_a_size(demo_store, tmp_path):
    whole = tmp_path / "all.parquet"
    _export(demo_store, whole, "--what", "candidates")
    res = _export(demo_store, tmp_path / "c.parquet", "--what", "candidates", "--shard-size", "6KB")
    shards = sorted(tmp_path.glob("c-*-of-*.parquet"))
    assert len(shards) > 1 and not (tmp_path / "c.parquet").exists()
    assert all(s.name.endswith(f"-of-{len(shards):05d}.parquet") for s in shards)
    assert f"{len(shards)} shards" in res.stderr
    parts = [r for s in shards for r in pq.read_table(s).to_pylist()]
    assert parts == pq.read_table(whole).to_pylist()  # the same rows, in the same order
    assert not list(tmp_path.glob(".*part"))  # no leftovers


def test_mistakes_are_named(demo_store, tmp_path):
    def fails(*args):
        res = run_cli("export", "--db", str(demo_store), "--out", str(tmp_path / "x.parquet"), *args, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        return res.stderr

    assert "--columns nope: not a column of examples" in fails("--columns", "messages,nope")
    assert "--what 'answers': choose one of examples, candidates, prompts, rejected" in fails("--what", "answers")
    assert "--shard-size 'big'" in fails("--shard-size", "big")
    assert "pass-rate window 0.9..0.2" in fails("--min-pass-rate", "0.9", "--max-pass-rate", "0.2")
    assert "export failed" in fails("--where", "no_such_column = 1")
    assert not (tmp_path / "x.parquet").exists()
    # no rows is not a mistake: an empty file with the columns
    _export(demo_store, tmp_path / "none.parquet", "--where", "false")
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0
