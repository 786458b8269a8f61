"""The cost ledger: each candidate's tokens and share of the engine's time, read back per run and per prompt class
by `factory stats`, `factory report` and the dataset card; a store from before schema 6 still reads."""

from __future__ import annotations

import json
import shutil
import time

import duckdb
import pytest
from conftest import rows, run_cli

from factory.engines import Batched, Completion, Request, share_time
from factory.store import StoreReader, StoreWriter


def test_a_batch_call_s_time_is_shared_by_tokens():
    comps = [[Completion("a", 10, "stop", 30), Completion("b", 30, "stop", 30)], [Completion("c", 20, "length", 80)]]
    out = share_time(comps, 2.0)
    secs = [c.seconds for cs in out for c in cs]
    assert secs == pytest.approx([2.0 * 40 / 200, 2.0 * 60 / 200, 2.0 * 100 / 200]) and sum(secs) == pytest.approx(2)
    assert share_time([[Completion("x", 5, "stop", 5, seconds=7.0)]], 1.0)[0][0].seconds == 7.0  # its own kept


class _Slow:
    """An engine that only generates lists, taking a while."""

    def generate(self, requests, sampling=None):
        time.sleep(0.05)
        return [[Completion("t", 4 * (i + 1), "stop", 4) for _ in range(r.n)] for i, r in enumerate(requests)]


def test_an_engine_that_generates_lists_gets_its_calls_time_shared():
    stream = Batched(_Slow())
    stream.add("a", Request([], 1))
    stream.add("b", Request([], 2))
    got = {}
    while stream.unfinished:
        got.update(stream.poll())
    stream.close()
    a, b = got["a"][0], got["b"][0]
    assert a.seconds > 0 and b.seconds == pytest.approx(a.seconds * (8 + 4) / (4 + 4))  # by tokens, prompt too


def test_stats_report_and_card_show_the_bill(demo_store, tmp_path):
    res = run_cli("stats", "--db", str(demo_store), "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    [run] = s["runs"]
    [(n, tokens, prompt_tokens, kept)] = rows(
        demo_store,
        "SELECT count(*), sum(n_tokens), sum(n_prompt_tokens), (SELECT count(*) FROM examples) FROM candidates",
    )
    assert (run["candidates"], run["tokens"], run["prompt_tokens"], run["examples"]) == (n, tokens, prompt_tokens, kept)
    assert run["engine_seconds"] > 0 and run["truncated_share"] == 0
    ledger = s["ledger"]
    assert sum(r["candidates"] for r in ledger) == n and sum(r["examples"] for r in ledger) == kept
    assert {r["difficulty"] for r in ledger} <= {"easy", "medium", "hard", "unsolved"} and len(ledger) >= 2
    for r in ledger:
        want = (r["tokens"] + r["prompt_tokens"]) / r["examples"] if r["examples"] else None
        assert r["tokens_per_example"] == pytest.approx(want) if want else r["tokens_per_example"] is None
    table = run_cli("stats", "--db", str(demo_store), COLUMNS="200").stdout
    assert "cost per kept example, by prompt class" in table and "unsolved" in table

    page = tmp_path / "r.html"
    assert run_cli("report", "--db", str(demo_store), "--out", str(page)).returncode == 0
    html = page.read_text()
    assert '<figure id="cost-by-difficulty">' in html and "no example kept" in html

    out = tmp_path / "ds"
    res = run_cli("publish", "--db", str(demo_store), "--repo-id", "me/x", "--dry-run", str(out))
    assert res.returncode == 0, res.stderr
    card = (out / "README.md").read_text()
    assert "### What it cost" in card and f"{(tokens + prompt_tokens) / kept:,.0f} per kept example" in card


def test_a_schema_5_store_is_read_as_it_is_and_a_writer_adds_the_ledger(demo_store, tmp_path):
    old = tmp_path / "old.duckdb"
    shutil.copy(demo_store, old)
    con = duckdb.connect(str(old))
    con.execute("DROP VIEW candidates")  # the file's view reads the column: made again without it, as schema 5 had
    con.execute("ALTER TABLE candidate_rows DROP COLUMN engine_seconds")
    con.execute("ALTER TABLE runs DROP COLUMN budget")
    con.execute("ALTER TABLE runs DROP COLUMN notices")
    con.execute("""CREATE VIEW candidates AS SELECT c.* EXCLUDE (text_edit) FROM candidate_rows c""")
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema'")
    con.close()
    with StoreReader(old) as store:  # read-only: the missing columns read as NULL
        s = store.stats()
        assert s["runs"][0]["engine_seconds"] is None and s["runs"][0]["notices"] is None
        assert all(r["seconds_per_example"] in (None, 0.0) for r in s["ledger"])
        assert store.spent(s["runs"][0]["run_id"])[1] == 0.0
    assert rows(old, "SELECT value FROM meta WHERE key = 'schema'") == [("5",)]  # the file as it was
    StoreWriter(old).close()  # a writer brings it to schema 6
    assert rows(old, "SELECT value FROM meta WHERE key = 'schema'") == [("6",)]
    assert rows(old, "SELECT count(*) FROM candidates WHERE engine_seconds IS NULL") == rows(
        old, "SELECT count(*) FROM candidates"
    )
