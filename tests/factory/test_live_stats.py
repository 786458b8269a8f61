"""Reading a store while a writer commits to it: `factory stats`, `report` and `export` open it between commits.

A synthetic writer (the real Store, committing many times a second) checks that no read is ever torn and that the
batches a reader blocks are spooled and land; a reader stopped inside DuckDB's open checks that the writer keeps off
the file from DuckDB's first read of it; a `factory generate` run (a real run's answers replayed at an engine's pace)
checks the commands end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import duckdb
import pytest
from conftest import DEMO_SETTINGS, FACTORY, REPLAY, ROOT, run_cli

from factory.live import reading
from factory.store import Batch, StoreReader, StoreWriter, candidate_id, now

WRITER = """
import json, random, sys, time
from pathlib import Path
from factory.store import Batch, StoreWriter, candidate_id, now
s = StoreWriter(sys.argv[1])
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
    snap = {"run_id": run, "at": now(), "prompts": 5000, "prompts_done": i, "candidates": 4 * i, "examples": i}
    s.post_progress(snap)
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


# Loaded into a reader: once DuckDB has read a database file's header (12 KiB at offset 0, read before DuckDB locks the
# file), stand still until the test says go, as a process the scheduler set aside would. On a busy machine that gap
# lasted long enough for a writer to checkpoint and let go within it (1 suite run in 8), and the reader then read
# blocks with a header older than the file: `Could not read enough bytes ... from location 2109440`.
PAUSE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
ssize_t pread64(int fd, void *buf, size_t n, off_t at) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real) real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    ssize_t got = real(fd, buf, n, at);
    if (n == 12288 && at == 0) {
        close(open(getenv("PAUSED"), O_CREAT | O_WRONLY, 0644));
        for (int i = 0; i < 6000 && access(getenv("GO"), F_OK) != 0; i++) usleep(10000);
    }
    return got;
}
ssize_t pread(int fd, void *buf, size_t n, off_t at) { return pread64(fd, buf, n, at); }
"""
READ = """
import sys
from factory.store import StoreReader
s = StoreReader(sys.argv[1], wait=60)
print(s.query("SELECT count(*) FROM candidates")[1][0][0])
s.close()
"""


def _batch(run: str, pid: str) -> Batch:
    cands = [{"candidate_id": candidate_id(run, pid, j), "run_id": run, "prompt_id": pid, "sample_index": j,
              "text": "x" * 3000, "n_tokens": 9, "n_prompt_tokens": 5, "finish_reason": "stop", "accepted": False,
              "reason": "wrong_answer", "scores": "{}", "created_at": now()} for j in range(4)]  # fmt: skip
    prompt = {"prompt_id": pid, "source": "s", "task": "math", "prompt": pid, "reference": "{}", "metadata": "{}"}
    return Batch([prompt], cands, [])


def test_a_reader_stopped_inside_duckdbs_open_reads_the_file_it_opened(tmp_path):
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler (cc) to build the pause loaded into the reader")
    subprocess.run([cc, "-shared", "-fPIC", "-x", "c", "-", "-o", str(tmp_path / "pause.so"), "-ldl"], input=PAUSE,
                   text=True, check=True)  # fmt: skip
    db, paused, go = tmp_path / "f.duckdb", tmp_path / "paused", tmp_path / "go"
    env = os.environ | {"LD_PRELOAD": str(tmp_path / "pause.so"), "PAUSED": str(paused), "GO": str(go)}
    writer = StoreWriter(db)
    try:
        run = writer.start_run("pause", "h", "x", "m", "vllm", {}, {})
        writer.commit(_batch(run, "p0"))
        reader = subprocess.Popen([sys.executable, "-c", READ, str(db)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not paused.exists():  # DuckDB in the reader has read the header and stands still
            if reader.poll() is not None:
                assert reader.returncode == 0, [line for line in reader.stderr.read().splitlines() if "Error" in line]
                pytest.skip(f"DuckDB {duckdb.__version__} read no 12 KiB header at offset 0: no gap to stop in")
            assert time.monotonic() < deadline, "the reader never opened the store"
            time.sleep(0.01)
        writer.commit(_batch(run, "p1"))  # the reader is opening the file: the batch waits in the spool
        spooled = writer.spool.exists()
        go.touch()
        out, err = reader.communicate(timeout=120)
    finally:
        go.touch()  # a reader left stopped by a failure above goes on
        writer.close()
    assert reader.returncode == 0, [line for line in err.splitlines() if "Error" in line]  # not DuckDB's stack
    assert out.split() == ["4"] and spooled  # p0 as the file held it; p1 was not written under the reader
    with StoreReader(db) as s:
        assert s.query("SELECT count(*) FROM candidates")[1] == [(8,)]  # and it landed afterwards


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
