"""Crash safety: SIGKILL a real `factory generate` (vLLM and all) mid-run, start it again, check the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import FACTORY, ROOT, rows, run_cli

pytestmark = pytest.mark.slow

ARGS = ["--limit", "8", "--set", "rejection.batch_prompts=3", "--set", "rejection.accept_per_prompt=2",
        "--set", "rejection.max_samples=6"]  # fmt: skip


def _start(recipe, db):
    return subprocess.Popen(
        [FACTORY, "generate", str(recipe), "--db", str(db), *ARGS],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes vLLM's engine processes too
    )


def _kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for_commits(snapshot, n: int, proc, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        if snapshot.exists():
            seen = json.loads(snapshot.read_text())["new_candidates"]
            if seen >= n:
                return seen
        time.sleep(0.2)
    raise AssertionError("no batch was committed in time")


def test_sigkill_then_resume_keeps_every_guarantee(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    snapshot = tmp_path / "f.duckdb.progress.json"

    # 1. killed while starting (before the engine is up): no run row may be left half-made
    proc = _start(demo_recipe, db)
    time.sleep(4)
    _kill(proc)
    if db.exists():
        assert rows(db, "SELECT count(*) FROM candidates") == [(0,)]

    # 2. killed mid-run, after at least one batch was committed
    proc = _start(demo_recipe, db)
    _wait_for_commits(snapshot, 1, proc)
    _kill(proc)
    before = rows(db, "SELECT count(*) FROM candidates")[0][0]
    assert before > 0
    [(run_id, status)] = rows(db, "SELECT run_id, status FROM runs")
    assert status == "running"  # killed: it could not mark itself
    kept_before = rows(db, "SELECT candidate_id, text FROM candidates ORDER BY candidate_id")

    # 3. the same command again continues the same run to the end
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *ARGS)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(resumed)" in res.stderr
    assert rows(db, "SELECT run_id, status FROM runs") == [(run_id, "complete")]

    # nothing committed before the kill was lost or rewritten
    after = dict(rows(db, "SELECT candidate_id, text FROM candidates"))
    assert all(after.get(cid) == text for cid, text in kept_before)
    # every prompt done: 2 examples kept, or all 6 samples spent
    per_prompt = rows(
        db,
        """SELECT c.prompt_id, count(*), count(e.example_id), list(c.sample_index ORDER BY c.sample_index)
           FROM candidates c LEFT JOIN examples e USING (candidate_id) GROUP BY c.prompt_id""",
    )
    assert len(per_prompt) == 8
    for _, drawn, kept, indices in per_prompt:
        assert kept == 2 or drawn == 6, (drawn, kept)
        assert kept <= 2 and drawn <= 6
        assert indices == list(range(drawn))  # no sample index twice, none skipped
    assert (
        rows(db, "SELECT count(*) FROM candidates GROUP BY run_id, prompt_id, sample_index HAVING count(*) > 1") == []
    )
    assert rows(db, "SELECT count(*) FROM examples GROUP BY candidate_id HAVING count(*) > 1") == []
    assert rows(db, "SELECT count(*) FROM examples e JOIN candidates c USING (candidate_id) WHERE NOT c.accepted") == [
        (0,)
    ]
