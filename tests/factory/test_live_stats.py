"""Reading a store while a writer holds it: `factory stats`, `report` and `export` read a consistent copy.

A synthetic writer (the real Store, committing as fast as it can, checkpointing often) checks that no copy is
ever torn; a real `factory generate` run checks the commands end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import FACTORY, ROOT, run_cli

from factory.live import reading

WRITER = """
import json, random, sys, time
from pathlib import Path
from factory.store import Batch, Store, candidate_id, now
s = Store(sys.argv[1])
s.con.execute("SET wal_autocheckpoint = '64KB'")  # checkpoints often: the copy must survive them too
run = s.start_run("stress", "h", "x", "m", "vllm", {}, {})
stop, i = Path(sys.argv[2]), 0
while not stop.exists() and i < 5000:
    pid = f"p{i:05d}"
    cands = [{"candidate_id": candidate_id(run, pid, j), "run_id": run, "prompt_id": pid, "sample_index": j,
              "text": "x" * random.randint(100, 4000), "n_tokens": 9, "n_prompt_tokens": 5, "finish_reason": "stop",
              "accepted": j == 0, "reason": None if j == 0 else "wrong_answer", "scores": "{}", "created_at": now()}
             for j in range(4)]
    ex = {"example_id": "ex-" + pid, "candidate_id": cands[0]["candidate_id"], "prompt_id": pid, "run_id": run,
          "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "task": "math",
          "source": "s", "n_tokens": 9, "created_at": now()}
    prompt = {"prompt_id": pid, "source": "s", "task": "math", "prompt": pid, "reference": "{}", "metadata": "{}"}
    s.commit(Batch([prompt], cands, [ex]))
    i += 1
    s.publish({"run_id": run, "at": now(), "prompts": 5000, "prompts_done": i, "candidates": 4 * i, "examples": i})
    time.sleep(random.random() * 0.02)
s.close()
"""


def test_copies_taken_while_a_writer_commits_are_never_torn(tmp_path):
    db, stop = tmp_path / "f.duckdb", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "f.duckdb.progress.json").exists():
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        seen = []
        for _ in range(40):
            with reading(db) as (store, live):
                s = store.stats()
                odd = store.query("SELECT prompt_id FROM candidates GROUP BY 1 HAVING count(*) != 4")[1]
            assert live and "reading a copy" in live and "prompts done" in live
            assert odd == [] and s["candidates"] == 4 * s["prompts"] == 4 * s["examples"] == 4 * s["passed"]
            seen.append(s["prompts"])
        assert seen == sorted(seen) and seen[-1] > seen[0] > 0  # every read whole, and the store kept growing
        res = run_cli("stats", "--db", str(db), "--json", timeout=120)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got["live"] and got["candidates"] == 4 * got["examples"] >= 4 * seen[-1]
        assert "live:" in res.stderr and "is open in a running `factory generate`" in res.stderr
        assert writer.poll() is None  # all of it happened while the writer held the store
    finally:
        stop.touch()
        writer.wait(timeout=60)
    res = run_cli("stats", "--db", str(db), "--json", timeout=120)
    assert json.loads(res.stdout)["live"] is None  # once it has ended, the store itself


@pytest.mark.slow
def test_stats_report_and_export_while_generate_runs(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    snapshot = tmp_path / "f.duckdb.progress.json"
    args = ["--limit", "24", "--set", "rejection.batch_prompts=2", "--set", "rejection.accept_per_prompt=2"]
    log = (tmp_path / "generate.log").open("w")  # a file, not a pipe: a full pipe would stall the writer
    gen = subprocess.Popen([FACTORY, "generate", str(demo_recipe), "--db", str(db), *args], cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not snapshot.exists():
            assert gen.poll() is None, (tmp_path / "generate.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no batch committed in time"
            time.sleep(0.2)
        res = run_cli("stats", "--db", str(db), "--json", timeout=120)
        live = json.loads(res.stdout)
        running = gen.poll() is None
        rep = run_cli("report", "--db", str(db), "--out", str(tmp_path / "r.html"), timeout=120)
        exp = run_cli("export", "--db", str(db), "--out", str(tmp_path / "e.jsonl"), timeout=120)
        assert running, "generate ended before stats ran: nothing was shown live"
    finally:
        gen.wait(timeout=600)
    assert gen.returncode == 0
    assert res.returncode == 0 and live["live"] and live["candidates"] > 0, res.stderr
    assert live["runs"][0]["status"] == "running"
    assert rep.returncode == 0 and 'id="dedup-clusters"' in (tmp_path / "r.html").read_text(), rep.stderr
    assert exp.returncode == 0, exp.stderr
    final = json.loads(run_cli("stats", "--db", str(db), "--json", timeout=120).stdout)
    assert final["live"] is None and final["runs"][0]["status"] == "complete"
    assert final["candidates"] >= live["candidates"] and final["examples"] >= live["examples"]
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) <= final["examples"]


def test_a_wal_checkpointed_away_mid_copy_is_taken_again(tmp_path, monkeypatch):
    """The writer deletes its WAL at each checkpoint, at any instant: a copy that loses it is retaken, not an error."""
    import shutil

    from factory import live
    from factory.store import Store

    db = tmp_path / "f.duckdb"
    Store(db).close()
    wal = tmp_path / "f.duckdb.wal"
    wal.write_bytes(b"")  # stands for the running writer's log, removed by the checkpoint below
    real, calls = shutil.copyfile, []

    def checkpoint_then_copy(src, dst):
        calls.append(src)
        if src == wal and wal.exists():
            wal.unlink()  # the writer's checkpoint lands between the stamp and the copy
        return real(src, dst)

    monkeypatch.setattr(live.shutil, "copyfile", checkpoint_then_copy)
    (tmp_path / "copy").mkdir()
    store = live._open_copy(db, tmp_path / "copy")
    try:
        assert store.stats()["candidates"] == 0
    finally:
        store.close()
    assert calls.count(db) == 2  # the take that lost the WAL was dropped and the store taken again
    assert not (tmp_path / "copy" / wal.name).exists()
