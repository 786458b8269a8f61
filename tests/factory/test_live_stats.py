"""Reading a store while a writer commits to it: `factory stats`, `report` and `export` open it between commits.

A synthetic writer (the real Store, committing many times a second) checks that no read is ever torn and that the
batches a reader blocks are spooled and land; a `factory generate` run (a real run's answers replayed at an engine's
pace) checks the commands end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import DEMO_SETTINGS, FACTORY, REPLAY, ROOT, run_cli

from factory.live import reading

WRITER = """
import json, random, sys, time
from pathlib import Path
from factory.store import Batch, Store, candidate_id, now
s = Store(sys.argv[1])
run = s.start_run("stress", "h", "x", "m", "vllm", {}, {})
stop, i, spooled = Path(sys.argv[2]), 0, 0
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
    spooled += s.spool.exists()  # a reader held the file: the batch waits in the spool
    i += 1
    s.publish({"run_id": run, "at": now(), "prompts": 5000, "prompts_done": i, "candidates": 4 * i, "examples": i})
    time.sleep(random.random() * 0.05)
s.close()
print(i, spooled)
"""


def test_reads_while_a_writer_commits_are_never_torn(tmp_path):
    db, stop = tmp_path / "f.duckdb", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
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
            assert live and "read as of its last commit" in live and "prompts done" in live
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
        out, _ = writer.communicate(timeout=60)
    committed, spooled = map(int, out.split())
    res = run_cli("stats", "--db", str(db), "--json", timeout=120)
    final = json.loads(res.stdout)
    assert final["live"] is None  # once it has ended, the store itself
    assert spooled > 0 and final["candidates"] == 4 * committed  # the batches readers held back all landed, once
    assert not (tmp_path / "f.duckdb.spool").exists()


def test_stats_report_and_export_while_generate_runs(tmp_path, demo_recipe):
    """`factory generate` replaying a real run's answers at the pace of a slow engine (504 tokens at 40 tokens/s):
    the commands read its store while it runs."""
    db = tmp_path / "f.duckdb"
    snapshot = tmp_path / "f.duckdb.progress.json"
    args = [*DEMO_SETTINGS, *REPLAY, "--set", "engine.replay_tokens_per_s=40", "--set", "rejection.batch_prompts=2"]
    log = (tmp_path / "generate.log").open("w")  # a file, not a pipe: a full pipe would stall the writer
    start = time.monotonic()
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
    assert time.monotonic() - start >= 504 / 40  # the recording's tokens, at the pace asked for
    assert res.returncode == 0 and live["live"] and live["candidates"] > 0, res.stderr
    assert live["runs"][0]["status"] == "running"
    assert rep.returncode == 0 and 'id="dedup-clusters"' in (tmp_path / "r.html").read_text(), rep.stderr
    assert exp.returncode == 0, exp.stderr
    final = json.loads(run_cli("stats", "--db", str(db), "--json", timeout=120).stdout)
    assert final["live"] is None and final["runs"][0]["status"] == "complete" and final["candidates"] == 34
    assert final["candidates"] >= live["candidates"] and final["examples"] >= live["examples"]
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) <= final["examples"]
