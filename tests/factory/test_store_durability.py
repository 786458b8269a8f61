"""The store's schema 2 on real files: a schema 1 store migrated whole, a writer killed inside a checkpoint or with
a batch in its spool loses nothing and stores nothing twice, an export killed midway leaves nothing behind."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import FACTORY, ROOT

from factory.chat import assistant_text
from factory.store import Batch, StoreReader, StoreWriter, candidate_id, now

DATA = Path(__file__).parent / "data"
# raw model texts: stripped, or given back their <think>, when they become an example's reply
TEXTS = ["plain answer 4", "  \n leading space and a trailing newline\n", "reasoning</think>\nThe answer is 7.",
         "<think>opened by the model</think> 9", "\t\u00e9t\u00e9 \u2014 caf\u00e9 \U0001f600  ", "   ",
         "x"]  # fmt: skip


def _v1_store(path: Path) -> None:
    """A store as factory wrote it before schema 2: indexed tables, each accepted text also in its example."""
    con = duckdb.connect(str(path))
    con.execute((DATA / "schema_v1.sql").read_text())
    con.execute("INSERT INTO runs VALUES ('r1', 'job', 'h', 'x', 'm', 'vllm', '{}', '{}', now(), NULL, 'complete')")
    for i, text in enumerate(TEXTS * 3):
        pid = f"p{i}"
        con.execute("INSERT INTO prompts VALUES (?, 's', 'math', ?, '{\"answer\": \"4\"}', '{}')", [pid, f"q{i}"])
        for j, accepted in enumerate([False, True, True]):  # the second passed and is kept; the third is not kept
            cid = candidate_id("r1", pid, j)
            con.execute(
                "INSERT INTO candidates VALUES (?, 'r1', ?, ?, ?, 5, 3, 'stop', ?, ?, '{}', now())",
                [cid, pid, j, text + ("" if j == 1 else f" #{j}"), accepted, None if accepted else "wrong_answer"],
            )
            if j == 1:
                reply = assistant_text(text, think=i % 2 == 0) if i < 2 * len(TEXTS) else "edited by hand"
                msgs = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": reply}]
                con.execute("INSERT INTO examples VALUES (?, ?, ?, 'r1', ?, 'math', 's', 5, now())",
                            ["ex-" + cid, cid, pid, msgs])  # fmt: skip
    con.execute("INSERT INTO prompt_drops VALUES ('r1', 'p-leak', 'contaminated', '{\"benchmark\": \"gsm8k\"}')")
    con.execute("INSERT INTO dedup VALUES ('response/x', 'k1', '\\x01\\x02'::BLOB)")
    con.close()


def _content(path: Path) -> dict:
    """Every table's rows; a run's first 11 columns and a candidate's first 12, those of schema 1 (schema 3 adds
    retry_of at the end, schema 6 engine_seconds)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
               for t in ("runs", "prompts", "candidates", "examples", "prompt_drops", "dedup")}  # fmt: skip
        return out | {"runs": [r[:11] for r in out["runs"]], "candidates": [r[:12] for r in out["candidates"]]}
    finally:
        con.close()


def test_a_schema_1_store_is_read_as_it_is_and_migrated_whole(tmp_path):
    path = tmp_path / "old.duckdb"
    _v1_store(path)
    before = _content(path)
    reader = StoreReader(path)  # read-only: no change, the old tables read as they are
    assert reader.stats()["examples"] == len(TEXTS) * 3 and len(reader.facts()["lengths"]["true"]) == 2 * 3 * 7
    reader.close()
    assert _content(path) == before
    StoreWriter(path).close()  # a writer migrates it
    after = _content(path)
    assert after == before  # every column users query, every row, every text as it was
    con = duckdb.connect(str(path), read_only=True)
    held = con.execute("SELECT count(*) FROM candidate_rows WHERE text IS NULL").fetchone()[0]
    assert con.execute("SELECT run_id, retry_of FROM runs").fetchall() == [("r1", None)]
    version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    indexes = con.execute("SELECT table_name FROM duckdb_constraints() WHERE constraint_type IN "
                          "('PRIMARY KEY', 'UNIQUE') ORDER BY 1").fetchall()  # fmt: skip
    con.close()
    # each example's text stored once; a hand-edited reply's candidate keeps its own copy, but for the all-blank
    # text, which any reply rebuilds (nothing of it is in the reply)
    assert held == 2 * len(TEXTS) + 1
    assert version == "6" and kinds["candidates"] == "VIEW" and kinds["candidate_rows"] == "BASE TABLE"
    # nothing indexed that grows with the store (a person's audit labels do not)
    assert set(indexes) <= {("meta",), ("runs",), ("audit_labels",)}
    store = StoreWriter(path)  # opened again: nothing left to migrate, and it takes new batches
    c = {"candidate_id": candidate_id("r2", "p0", 0), "run_id": "r2", "prompt_id": "p0", "sample_index": 0,
         "text": " new ", "n_tokens": 1, "n_prompt_tokens": 1, "finish_reason": "stop", "accepted": True,
         "reason": None, "scores": "{}", "created_at": now()}  # fmt: skip
    ex = {"example_id": "ex-new", "candidate_id": c["candidate_id"], "prompt_id": "p0", "run_id": "r2",
          "messages": [{"role": "assistant", "content": "new"}], "task": "math", "source": "s", "n_tokens": 1,
          "created_at": now()}  # fmt: skip
    store.commit(Batch([{"prompt_id": "p0", "source": "s", "task": "math", "prompt": "q0", "reference": "{}",
                         "metadata": "{}"}], [c], [ex]))  # fmt: skip  # p0 is known: not stored twice
    assert store.query(f"SELECT text FROM candidates WHERE candidate_id = '{c['candidate_id']}'")[1] == [(" new ",)]
    assert store.query("SELECT count(*) FROM prompts WHERE prompt_id = 'p0'")[1] == [(1,)]
    store.close()


WRITER = """
import os, sys
import factory.store.writer as fs
from factory.store import Batch, StoreWriter, candidate_id, now

fs.CHECKPOINT_BYTES = 0  # a checkpoint after every commit
checkpoint = fs.StoreWriter._checkpoint
def checkpointing(self, con):
    print("checkpoint", flush=True)  # it folds the WAL into the file next
    checkpoint(self, con)
fs.StoreWriter._checkpoint = checkpointing

s = StoreWriter(sys.argv[1])
run = s.find_run("h") or s.start_run("kill", "h", "x", "m", "vllm", {}, {})
done = s.progress(run)
for b in range(int(sys.argv[2])):
    pid = f"p{b:03d}"
    if pid in done:
        continue
    big = [os.urandom(150_000 + 1000 * j).hex() + f"{b}/{j}" for j in range(4)]  # 1.2 MB a batch to checkpoint
    cands = [{"candidate_id": candidate_id(run, pid, j), "run_id": run, "prompt_id": pid, "sample_index": j,
              "text": big[j], "n_tokens": 9, "n_prompt_tokens": 5, "finish_reason": "stop", "accepted": j == 0,
              "reason": None if j == 0 else "wrong_answer", "scores": "{}", "created_at": now()} for j in range(4)]
    ex = {"example_id": "ex-" + pid, "candidate_id": cands[0]["candidate_id"], "prompt_id": pid, "run_id": run,
          "messages": [{"role": "assistant", "content": big[0]}], "task": "math", "source": "s", "n_tokens": 9,
          "created_at": now()}
    s.commit(Batch([{"prompt_id": pid, "source": "s", "task": "math", "prompt": pid, "reference": "{}",
                     "metadata": "{}"}], cands, [ex]))
    print("committed", pid, flush=True)
s.close()
print("done", flush=True)
"""


def _check(path: Path, committed: set[str]) -> int:
    """Every batch reported committed is there whole, nothing twice; the number of batches stored."""
    store = StoreReader(path)
    try:
        _, rows = store.query("SELECT prompt_id, count(*), count(DISTINCT sample_index), count(*) FILTER "
                              "(WHERE length(text) > 300000) FROM candidates GROUP BY 1")  # fmt: skip
        [(examples, held)] = store.query("SELECT count(*), count(*) FILTER (WHERE c.text IS NULL) FROM examples e "
                                         "JOIN candidate_rows c USING (candidate_id)")[1]  # fmt: skip
    finally:
        store.close()
    assert all(n == distinct == long == 4 for _, n, distinct, long in rows), rows
    assert committed <= {p for p, *_ in rows}
    assert examples == held == len(rows)  # one example per batch, its text stored once
    return len(rows)


def test_a_writer_killed_inside_checkpoints_loses_nothing_and_stores_nothing_twice(tmp_path):
    path, total, rng = tmp_path / "k.duckdb", 24, random.Random(7)
    committed, interrupted = set(), 0
    for _ in range(6):
        w = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(total)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        now_committed = 0
        for line in w.stdout:
            if line.startswith("committed"):
                committed.add(line.split()[1])
                now_committed += 1
            elif line.startswith("checkpoint") and now_committed >= 2:  # as the checkpoint after a commit begins
                time.sleep(rng.random() * 0.01)
                w.send_signal(signal.SIGKILL)
                break
        w.wait(timeout=60)
        assert w.returncode == -signal.SIGKILL, "the writer ended before it was killed"
        interrupted += (tmp_path / "k.duckdb.wal").exists()  # the checkpoint had not folded the WAL in yet
        _check(path, committed)
    print(f"{interrupted} of 6 kills landed before the checkpoint folded the WAL in")
    assert interrupted >= 1, "no kill landed before a checkpoint finished"
    out = subprocess.run([sys.executable, "-c", WRITER, str(path), str(total)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0 and out.stdout.rstrip().endswith("done"), out.stderr
    assert _check(path, committed) == total


def test_a_spooled_batch_survives_a_crash_and_lands_once(tmp_path):
    path = tmp_path / "s.duckdb"
    child = """
import os, signal, sys
from factory.store import Batch, StoreWriter, candidate_id, now
s = StoreWriter(sys.argv[1])
run = s.start_run("spool", "h", "x", "m", "vllm", {}, {})
def batch(pid):
    c = {"candidate_id": candidate_id(run, pid, 0), "run_id": run, "prompt_id": pid, "sample_index": 0, "text": pid,
         "n_tokens": 1, "n_prompt_tokens": 1, "finish_reason": "stop", "accepted": False, "reason": "wrong_answer",
         "scores": "{}", "created_at": now()}
    return Batch([{"prompt_id": pid, "source": "s", "task": "math", "prompt": pid, "reference": "{}",
                   "metadata": "{}"}], [c], [])
s.commit(batch("a"))
print("a", flush=True)
sys.stdin.readline()  # a reader holds the file now
s.commit(batch("b"))
print("spooled" if s.spool.exists() else "committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    w = subprocess.Popen([sys.executable, "-c", child, str(path)], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert w.stdout.readline().strip() == "a"
    reader = StoreReader(path, wait=5)
    w.stdin.write("\n")
    w.stdin.flush()
    assert w.stdout.readline().strip() == "spooled"
    w.wait(timeout=30)
    assert reader.query("SELECT count(*) FROM candidates")[1] == [(1,)]  # b is in the spool, not yet the store
    reader.close()
    spool = tmp_path / "s.duckdb.spool"
    kept = tmp_path / "spool-copy"
    shutil.copytree(spool, kept)
    StoreWriter(path).close()  # the next writer commits the spool first
    assert not spool.exists()
    assert [r[0] for r in StoreReader(path).query("SELECT text FROM candidates ORDER BY 1")[1]] == ["a", "b"]
    shutil.copytree(kept, spool)  # as if a crash came after the spooled batch's commit, before its folder went
    StoreWriter(path).close()
    store = StoreReader(path)
    assert store.query("SELECT count(*) FROM candidates")[1] == [(2,)] and not spool.exists()  # not twice
    store.close()


def test_an_export_killed_midway_leaves_nothing_and_runs_again(tmp_path):
    path = tmp_path / "e.duckdb"
    store = StoreWriter(path)
    run = store.start_run("export", "h", "x", "m", "vllm", {}, {})
    body = "".join(random.Random(1).choices("abcdefghij klmnopqrst", k=400_000))
    for b in range(40):  # ~16 MB of text in 400 examples
        cands, exs, prompts = [], [], []
        for i in range(10):
            pid, text = f"p{b}-{i}", body[b * 1000 + i :] + f"{b}/{i}"
            cid = candidate_id(run, pid, 0)
            cands.append({"candidate_id": cid, "run_id": run, "prompt_id": pid, "sample_index": 0, "text": text,
                          "n_tokens": 1, "n_prompt_tokens": 1, "finish_reason": "stop", "accepted": True,
                          "reason": None, "scores": "{}", "created_at": now()})  # fmt: skip
            exs.append({"example_id": "ex-" + cid, "candidate_id": cid, "prompt_id": pid, "run_id": run,
                        "messages": [{"role": "assistant", "content": text}], "task": "math", "source": "s",
                        "n_tokens": 1, "created_at": now()})  # fmt: skip
            prompts.append({"prompt_id": pid, "source": "s", "task": "math", "prompt": pid, "reference": "{}",
                            "metadata": "{}"})  # fmt: skip
        store.commit(Batch(prompts, cands, exs))
    store.close()
    out = tmp_path / "sft.jsonl"
    cmd = [FACTORY, "export", "--db", str(path), "--out", str(out)]
    e = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = tmp_path / ".sft.jsonl.part"
    deadline = time.monotonic() + 120
    while not (part.exists() and any(f.stat().st_size for f in part.iterdir())):  # writing has begun
        assert e.poll() is None and time.monotonic() < deadline, "the export ended before it could be killed"
        time.sleep(0.01)
    e.send_signal(signal.SIGKILL)
    e.wait(timeout=30)
    assert not out.exists()  # nothing half-written where the user looks
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 400 and not part.exists()
    firsts = [json.loads(x)["prompt_id"] for x in lines[:11]]
    assert firsts == [f"p0-{i}" for i in range(10)] + ["p1-0"]  # in the order committed: no sort of the whole store
    pq_out = tmp_path / "sft.parquet"
    assert subprocess.run([FACTORY, "export", "--db", str(path), "--out", str(pq_out)], cwd=ROOT,
                          timeout=300).returncode == 0  # fmt: skip
    assert pq.read_table(pq_out).num_rows == 400 and os.path.getsize(pq_out) > 0


@pytest.mark.parametrize("reply", ["answer", " answer ", "<think>\nanswer"])
def test_a_text_is_held_by_its_example_only_when_it_can_be_rebuilt_exactly(reply):
    from factory.store.schema import held_by_example

    for text in ["answer", "  answer\n", "answer</think>", "other", ""]:
        edit = held_by_example(text, reply)
        if edit is not None:
            assert edit["head"] + reply[edit["cut"] :] + edit["tail"] == text
    assert held_by_example("  answer\n", "answer") == {"head": "  ", "cut": 0, "tail": "\n"}
    assert held_by_example("answer", "<think>\nanswer") == {"head": "", "cut": 8, "tail": ""}
    assert held_by_example("answers", "answer") is None and held_by_example("answer", "other") is None


def test_a_migration_cut_off_leaves_the_old_store_and_is_done_again(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    _v1_store(path)
    before = _content(path)

    def crash(*a):
        raise KeyboardInterrupt  # killed after the new file is written, before it takes the old one's place

    monkeypatch.setattr("factory.store.handoff.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        StoreWriter(path)
    monkeypatch.undo()
    assert (tmp_path / "old.duckdb.migrating").exists()  # the half-done work is left beside, the store untouched
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'candidate_rows'").fetchone()[
        0
    ] == 0  # fmt: skip
    con.close()
    assert _content(path) == before
    StoreWriter(path).close()  # the next writer migrates it from the start
    assert _content(path) == before and not (tmp_path / "old.duckdb.migrating").exists()
