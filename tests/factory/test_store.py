"""The DuckDB store on a real file: batches in one transaction, runs, progress, stats, export, the write lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from factory.errors import FactoryError
from factory.store import Batch, StoreBusy, StoreReader, StoreWriter, candidate_id, now


def _prompt(pid: str, source: str = "reasoning_gym/basic_arithmetic", task: str = "math") -> dict:
    return {"prompt_id": pid, "source": source, "task": task, "prompt": f"question {pid}",
            "reference": json.dumps({"answer": "4"}), "metadata": "{}"}  # fmt: skip


def _cand(run: str, pid: str, i: int, accepted: bool, reason: str | None = None, tokens: int = 10) -> dict:
    return {"candidate_id": candidate_id(run, pid, i), "run_id": run, "prompt_id": pid, "sample_index": i,
            "text": f"answer {i}", "n_tokens": tokens, "n_prompt_tokens": 5, "finish_reason": "stop",
            "accepted": accepted, "reason": reason, "scores": json.dumps({"correct": float(accepted)}),
            "created_at": now()}  # fmt: skip


def _example(c: dict, task: str = "math", source: str = "reasoning_gym/basic_arithmetic") -> dict:
    msgs = [{"role": "user", "content": f"question {c['prompt_id']}"}, {"role": "assistant", "content": c["text"]}]
    return {"example_id": "ex-" + c["candidate_id"], "candidate_id": c["candidate_id"], "prompt_id": c["prompt_id"],
            "run_id": c["run_id"], "messages": msgs, "task": task, "source": source, "n_tokens": c["n_tokens"],
            "created_at": now()}  # fmt: skip


def _start(store: StoreWriter, recipe_hash: str = "h1", name: str = "job") -> str:
    return store.start_run(name, recipe_hash, "source: {}\n", "m", "vllm", {"temperature": 0.6}, {"factory": "0"})


def _count(store: StoreWriter, table: str) -> int:
    return store.query(f"SELECT count(*) FROM {table}")[1][0][0]


@pytest.fixture
def filled(store):
    """A run with prompt a (2 drawn, 1 passed, kept) and prompt b (3 drawn, none passed)."""
    run = _start(store)
    a = [_cand(run, "a", 0, False, "wrong_answer", 7), _cand(run, "a", 1, True, tokens=11)]
    b = [_cand(run, "b", i, False, r) for i, r in enumerate(["wrong_answer", "no_answer", "wrong_answer"])]
    store.commit(Batch([_prompt("a"), _prompt("b", "jsonl:x.jsonl")], a + b, [_example(a[1])]))
    return store, run


def test_commit_and_read_back(filled):
    store, run = filled
    cols, rows = store.query("SELECT prompt_id, source, task, prompt, reference FROM prompts ORDER BY 1")
    assert cols == ["prompt_id", "source", "task", "prompt", "reference"]
    assert rows[0] == ("a", "reasoning_gym/basic_arithmetic", "math", "question a", '{"answer": "4"}')
    _, rows = store.query("SELECT prompt_id, sample_index, accepted, reason FROM candidates ORDER BY 1, 2")
    assert rows == [("a", 0, False, "wrong_answer"), ("a", 1, True, None), ("b", 0, False, "wrong_answer"),
                    ("b", 1, False, "no_answer"), ("b", 2, False, "wrong_answer")]  # fmt: skip
    _, [(cid, ex_run, messages)] = store.query("SELECT candidate_id, run_id, messages FROM examples")
    assert cid == candidate_id(run, "a", 1) and ex_run == run
    assert messages == [{"role": "user", "content": "question a"}, {"role": "assistant", "content": "answer 1"}]


def test_messages_is_a_list_of_role_content_structs(filled):
    store, _ = filled
    [(kind,)] = store.query("SELECT typeof(messages) FROM examples")[1]
    assert kind.replace('"', "") == "STRUCT(role VARCHAR, content VARCHAR)[]"
    _, rows = store.query("SELECT m.role, m.content FROM (SELECT unnest(messages) AS m FROM examples)")
    assert rows == [("user", "question a"), ("assistant", "answer 1")]


def test_a_second_write_of_a_sample_rolls_the_whole_batch_back(filled):
    store, run = filled
    before = {t: _count(store, t) for t in ("prompts", "candidates", "examples")}
    again = _cand(run, "a", 1, True)  # (run_id, prompt_id, sample_index) already stored
    fresh = _cand(run, "c", 0, True)
    with pytest.raises(FactoryError, match="already in the store"):
        store.commit(Batch([_prompt("c")], [fresh, again], [_example(fresh)]))
    assert {t: _count(store, t) for t in before} == before
    assert store.query("SELECT count(*) FROM prompts WHERE prompt_id = 'c'")[1] == [(0,)]
    # the same unique key under another candidate_id fails too: it is the sample, not the id, that is unique
    dup = _cand(run, "b", 2, False, "no_answer") | {"candidate_id": "other-id"}
    with pytest.raises(FactoryError, match="already in the store"):
        store.commit(Batch([], [dup], []))
    store.commit(Batch([_prompt("c")], [fresh], [_example(fresh)]))  # the store still takes new batches
    assert _count(store, "candidates") == before["candidates"] + 1 and _count(store, "prompts") == 3


def test_prompts_are_written_once(filled):
    store, _ = filled
    run2 = _start(store, "h2")
    store.commit(Batch([_prompt("a")], [_cand(run2, "a", 0, True)], []))  # a prompt seen before is ignored
    assert _count(store, "prompts") == 2 and _count(store, "candidates") == 6


def test_progress(filled):
    store, run = filled
    assert store.progress(run) == {"a": (2, 1, 1, 18), "b": (3, 0, 0, 30)}
    assert store.progress("no-such-run") == {}


def test_reads_for_the_trainers_and_publish(filled):
    store, run = filled
    c = _cand(run, "c", 0, True)
    store.commit(Batch([_prompt("c", task="code")], [c], [_example(c, task="code")]))
    chats = store.messages()
    assert [m[-1]["content"] for m in chats] == ["answer 1", "answer 0"]  # commit order
    assert store.messages("task = 'code'") == [chats[1]] and store.messages(limit=1) == [chats[0]]
    a_first = candidate_id(run, "a", 1) < candidate_id(run, "c", 0)  # example_id is "ex-" + candidate_id
    assert store.messages(order="id") == (chats if a_first else chats[::-1])
    rates = {r[2]: r[5] for r in store.prompts_by_pass_rate()}  # by prompt text: pass rate
    assert rates == {"question a": 0.5, "question b": 0.0, "question c": 1.0}
    assert [r[2] for r in store.prompts_by_pass_rate(pass_rate=(0.4, 1.0), limit=1)] == ["question a"]
    assert [r[:2] for r in store.prompts_by_pass_rate("task = 'code'")] == [("reasoning_gym/basic_arithmetic", "code")]
    assert store.task_rows("code", ["prompt_id"]).read_all().column("prompt_id").to_pylist() == ["c"]
    assert store.task_rows("math", ["prompt_id"], "n_tokens > 100").read_all().num_rows == 0
    with pytest.raises(FactoryError, match="query failed"):
        store.messages("no_such_column = 1")


def test_runs(store):
    assert store.find_run("h1") is None
    run = _start(store, "h1", "first")
    assert store.find_run("h1") == run and store.find_run("h2") is None
    [(name, rhash, recipe, status, ended, sampling)] = store.query(
        f"SELECT name, recipe_hash, recipe, status, ended_at, sampling FROM runs WHERE run_id = '{run}'"
    )[1]
    assert (name, rhash, recipe, status, ended) == ("first", "h1", "source: {}\n", "running", None)
    assert json.loads(sampling) == {"temperature": 0.6}
    store.set_status(run, "interrupted")
    [(status, ended)] = store.query(f"SELECT status, ended_at FROM runs WHERE run_id = '{run}'")[1]
    assert status == "interrupted" and ended is not None
    store.set_status(run, "running")
    assert store.query(f"SELECT status, ended_at FROM runs WHERE run_id = '{run}'")[1] == [("running", None)]
    time.sleep(0.01)
    newer = _start(store, "h1", "second")
    assert newer != run and store.find_run("h1") == newer  # the latest run of a recipe is the one resumed


def test_stats(filled):
    store, run = filled
    other = _start(store, "h2", "other")
    store.commit(Batch([], [_cand(other, "a", 0, False, "truncated", 3)], []))
    s = store.stats()
    assert (s["prompts"], s["candidates"], s["passed"], s["examples"]) == (2, 6, 1, 1)
    assert s["reasons"] == {"wrong_answer": 3, "no_answer": 1, "truncated": 1}
    first, second = s["runs"]
    assert first["run_id"] == run and second["run_id"] == other
    assert (first["prompts"], first["candidates"], first["passed"], first["tokens"]) == (2, 5, 1, 48)
    assert (second["prompts"], second["candidates"], second["passed"], second["tokens"]) == (1, 1, 0, 3)
    assert first["status"] == "running" and first["name"] == "job"
    assert s["by_source"] == [
        {"source": "jsonl:x.jsonl", "task": "math", "candidates": 3, "passed": 0, "examples": 0},
        {"source": "reasoning_gym/basic_arithmetic", "task": "math", "candidates": 3, "passed": 1, "examples": 1},
    ]


def test_stats_of_an_empty_store(store):
    s = store.stats()
    assert (s["prompts"], s["candidates"], s["runs"], s["reasons"], s["by_source"]) == (0, 0, [], {}, [])


def test_query_errors_are_factory_errors(store):
    with pytest.raises(FactoryError, match="query failed"):
        store.query("SELEC nonsense")
    assert store.query("SELECT 1 AS one, 'x' AS two") == (["one", "two"], [(1, "x")])


def test_post_progress_writes_a_snapshot(store):
    store.post_progress({"run_id": "r", "at": now(), "candidates": 3})
    assert json.loads(store.snapshot_path.read_text())["candidates"] == 3
    assert store.snapshot_path.name == "f.duckdb.progress.json"


def test_reading_a_missing_store(tmp_path):
    missing = tmp_path / "none.duckdb"
    with pytest.raises(FactoryError, match="no store at") as e:
        StoreReader(missing)
    assert str(missing) in str(e.value) and not missing.exists()


def test_a_store_another_process_holds_is_refused_clearly(tmp_path):
    path = tmp_path / "held.duckdb"
    StoreWriter(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        for opener in (StoreWriter, StoreReader):
            t = time.monotonic()
            with pytest.raises(StoreBusy) as e:
                opener(path, wait=1.0)
            assert 1.0 <= time.monotonic() - t < 10  # it waited for a free moment, then gave up
            msg = str(e.value)
            assert "another process" in msg and str(path) in msg and "progress.json" in msg
    finally:
        holder.kill()
        holder.wait()
    StoreReader(path).close()  # free again once the holder is gone


def test_a_second_writer_is_refused_at_once_and_a_reader_is_let_in_when_it_asks(tmp_path):
    path = tmp_path / "w.duckdb"
    writer = StoreWriter(path)
    try:
        with pytest.raises(StoreBusy, match="being written by another process"):
            StoreWriter(path, wait=30)  # the writer's own lock: no wait, not even for the DuckDB file
        run = _start(writer)
        writer.commit(Batch([_prompt("a")], [_cand(run, "a", 0, True)], []))
        reader = subprocess.Popen(  # another process: the idle writer lets go of the file when it asks
            [sys.executable, "-c", "import sys; from factory.store import StoreReader; s = StoreReader(sys.argv[1],"
             " wait=10); print(s.query('SELECT count(*) FROM candidates')[1][0][0], flush=True); sys.stdin.readline()",
             str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert reader.stdout.readline().strip() == "1"
        writer.commit(Batch([_prompt("b")], [_cand(run, "b", 0, True)], []))  # the reader holds it: spooled
        assert writer.spool.exists()
        reader.communicate("\n", timeout=30)
        writer.commit(Batch([_prompt("c")], [_cand(run, "c", 0, True)], []))  # the spooled batch first
        assert not writer.spool.exists()
        _, rows = writer.query("SELECT prompt_id FROM candidates ORDER BY created_at")
        assert rows == [("a",), ("b",), ("c",)]
    finally:
        writer.close()


def test_a_request_left_by_a_dead_reader_is_cleared(tmp_path):
    from factory.store.handoff import asked

    path = tmp_path / "d.duckdb"
    writer = StoreWriter(path)
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        ask = tmp_path / "d.duckdb.readers" / f"{dead.stdout.strip()}-abcd1234"
        ask.parent.mkdir(exist_ok=True)
        ask.touch()
        assert not asked(path) and not ask.exists()  # its process is gone: no one waits for the file
        alive = tmp_path / "d.duckdb.readers" / f"{os.getpid()}-abcd1234"
        alive.touch()
        assert asked(path)
        alive.unlink()
    finally:
        writer.close()


def test_keys_seen_before_are_looked_up_and_only_they():
    import numpy as np

    from factory.store.writer import Seen

    seen = Seen(np.array([5, 1, 9], np.uint64))
    assert seen.maybe(np.array([1, 2, 9, 10, 0], np.uint64)).tolist() == [True, False, True, False, False]
    seen.add(np.array([2, 7], np.uint64))
    assert seen.h.tolist() == [1, 2, 5, 7, 9]
    assert Seen(np.array([], np.uint64)).maybe(np.array([3], np.uint64)).tolist() == [False]
