"""`factory generate RECIPE --retry RUN_ID`: a new run that samples only the prompts RUN_ID left unfinished, its
samples counted toward max_samples; driven by a scripted engine (no model), judged by real workers."""

from __future__ import annotations

import duckdb
import pytest
import yaml
from conftest import run_cli
from fakes import ScriptedEngine

from factory import engines, sources
from factory import recipe as recipes
from factory.errors import FactoryError
from factory.recipe import SourceConfig
from factory.run import retry_plan, run_recipe
from factory.store import Batch, StoreReader, StoreWriter, candidate_id, now

TEMPLATE = "Q: {prompt}"


def Engine(prompts, right=(), fail_at: int | None = None) -> ScriptedEngine:
    """Answers the prompts in `right` correctly, every other one wrongly; `fail_at` raises on that request (a ^C)."""
    answers = {TEMPLATE.replace("{prompt}", p.prompt): p.reference["answer"] for p in prompts}
    good = {TEMPLATE.replace("{prompt}", p.prompt) for p in right}
    say = lambda user, k: f"Adding up.\n</think>\nThe answer is {answers[user] if user in good else 'x'}."  # noqa: E731
    return ScriptedEngine(say, tokens=4, fail_at=fail_at)


@pytest.fixture(scope="module")
def prompts():
    return sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=4, seed=0))


def _recipe(max_tokens: int = 64, **rejection) -> recipes.Recipe:
    return recipes.parse({
        "source": {"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 4},
        "model": "m", "engine": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
        "prompt": {"template": TEMPLATE, "think": True}, "sampling": {"max_tokens": max_tokens},
        "rejection": {"accept_per_prompt": 1, "max_samples": 4, "round_size": 2, "batch_prompts": 1} | rejection,
        "filters": ["format", "verify"], "verify": {"workers": 1},
    })  # fmt: skip


def _with(monkeypatch, engine: Engine) -> list:
    built = []
    monkeypatch.setattr(engines, "build", lambda *a, **k: built.append(1) or engine)
    return built


def _asked(engine: Engine, p) -> int:
    return engine.asked.count(TEMPLATE.replace("{prompt}", p.prompt))


def _runs(db) -> list[tuple]:
    with StoreReader(db) as s:
        return s.query("SELECT run_id, retry_of, status FROM runs ORDER BY started_at")[1]


def test_a_retry_samples_only_what_the_old_run_left_and_counts_its_samples(tmp_path, prompts, monkeypatch):
    db, (a, b, c) = tmp_path / "f.duckdb", prompts[:3]
    first = Engine(prompts, right=[a])
    _with(monkeypatch, first)
    _, old, _ = run_recipe(_recipe(), [a, b, c], db)
    assert (_asked(first, a), _asked(first, b), _asked(first, c)) == (1, 2, 2)  # b and c spent max_samples 4

    said: list[str] = []
    longer = _recipe(max_tokens=8192, max_samples=6)
    second = Engine(prompts, right=[c], fail_at=1)  # c right now; stopped after b's first round
    _with(monkeypatch, second)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(longer, [a, b, c], db, retry=old, say=said.append)
    assert "2 of its 3 prompts; 2 are sampled again" in said[0]
    [(first_id, _, done), (new, retry_of, status)] = _runs(db)
    assert (first_id, done, status) == (old, "complete", "interrupted") and new != old and retry_of == old

    third = Engine(prompts, right=[c])
    _with(monkeypatch, third)
    tally, again, resumed = run_recipe(longer, [a, b, c], db, retry=old)  # the same command: the retry resumes
    assert again == new and resumed and len(_runs(db)) == 2 and _runs(db)[1][2] == "complete"
    assert _asked(second, a) + _asked(third, a) == 0  # a was solved: never sampled again
    assert _asked(third, c) == 1  # right on its first round
    with StoreReader(db) as s:
        drawn = {pid: (d, k) for pid, (d, _, k, _) in s.progress(new).items()}
    assert drawn == {b.prompt_id: (2, 0), c.prompt_id: (2, 1)}  # b: 4 old + 2 new = max_samples 6
    assert (tally.prompts, tally.prompts_done, tally.candidates, tally.examples) == (2, 2, 4, 1)  # this run's only

    built = _with(monkeypatch, Engine(prompts))
    _, once_more, resumed = run_recipe(longer, [a, b, c], db, retry=old)
    assert once_more == new and resumed and not built  # finished: no engine loaded, no third run
    assert run_recipe(_recipe(), [a, b, c], db)[1] == old  # the old recipe without --retry is still the old run


def test_retry_plan_counts_every_earlier_run_and_says_what_it_cannot_sample(tmp_path, prompts):
    a, b, c, d = prompts
    with StoreWriter(tmp_path / "f.duckdb") as store:
        old = store.start_run("t", "h1", "x", "m", "scripted", {}, {})
        _store(store, old, [(a, 2), (b, 4), (c, 2), (d, 1)], kept=a)
        retry = store.start_run("t", "h2", "x", "m", "scripted", {}, {}, retry_of=old)
        _store(store, retry, [(b, 2), (c, 1)])
        said: list[str] = []
        todo, before = retry_plan(store, _recipe(max_samples=4), [a, b, c], old, said.append)
        assert [p.prompt_id for p in todo] == [c.prompt_id] and before == {c.prompt_id: (2, 0)}
        assert "1 spent rejection.max_samples=4" in said[0] and "--set rejection.max_samples=8" in said[0]
        assert "1 are not in this recipe's source" in said[0]  # d
        # a retry of the retry: both runs count, and only the prompts the retry sampled
        todo, before = retry_plan(store, _recipe(max_samples=8), [a, b, c, d], retry)
        assert before == {b.prompt_id: (6, 0), c.prompt_id: (3, 0)} and len(todo) == 2
        with pytest.raises(FactoryError, match="nothing to sample.*2 spent rejection.max_samples=3"):
            retry_plan(store, _recipe(max_samples=3), [a, b, c, d], retry)
        with pytest.raises(FactoryError, match="--retry no-such-run: no such run in"):
            retry_plan(store, _recipe(), [a], "no-such-run")


def _store(store: StoreWriter, run: str, drawn: list[tuple], kept=None) -> None:
    """n wrong samples of each (prompt, n), but the first of `kept`'s, accepted and kept."""
    cands, examples = [], []
    for p, n in drawn:
        for i in range(n):
            ok = p is kept and i == 0
            cid = candidate_id(run, p.prompt_id, i)
            cands.append({"candidate_id": cid, "run_id": run, "prompt_id": p.prompt_id, "sample_index": i,
                          "text": f"t{i}", "n_tokens": 1, "n_prompt_tokens": 1, "finish_reason": "stop",
                          "accepted": ok, "reason": None if ok else "wrong_answer", "scores": "{}",
                          "created_at": now()})  # fmt: skip
            if ok:
                examples.append({"example_id": "ex-" + cid, "candidate_id": cid, "prompt_id": p.prompt_id,
                                 "run_id": run, "messages": [{"role": "assistant", "content": f"t{i}"}],
                                 "task": "math", "source": p.source, "n_tokens": 1, "created_at": now()})  # fmt: skip
    store.commit(Batch([p.row() for p, _ in drawn], cands, examples))


def test_a_store_made_before_retry_of_is_read_as_it_is_and_gets_the_column_from_its_writer(tmp_path):
    path = tmp_path / "old.duckdb"
    with StoreWriter(path) as store:
        old = store.start_run("t", "h1", "x", "m", "vllm", {}, {})
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE runs DROP COLUMN retry_of")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    con.close()
    with StoreReader(path) as reader:
        assert [r["run_id"] for r in reader.runs()] == [old] and reader.stats()["runs"][0]["run_id"] == old
    with StoreWriter(path) as store:
        assert store.find_run("h1") == old and store.lineage(old) == [old]
        new = store.start_run("t", "h2", "x", "m", "vllm", {}, {}, retry_of=old)
        assert store.find_run("h2") is None and store.find_run("h2", old) == new
        assert store.query("SELECT value FROM meta WHERE key = 'schema'")[1] == [("6",)]
        assert store.query("SELECT run_id, retry_of FROM runs ORDER BY started_at")[1] == [(old, None), (new, old)]


def test_cli_retry_of_an_unknown_run_is_a_clean_error(tmp_path):
    recipe = tmp_path / "job.yaml"
    raw = {"model": "no-such-model", "engine": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "retries": 1},
           "source": {"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 2}}  # fmt: skip
    recipe.write_text(yaml.safe_dump(raw))
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(recipe), "--db", str(db), "--retry", "20990101-000000-abcdef", timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"--retry 20990101-000000-abcdef: no store at {db}" in res.stderr and not db.exists()
    StoreWriter(db).close()
    res = run_cli("generate", str(recipe), "--db", str(db), "--retry", "20990101-000000-abcdef", timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--retry 20990101-000000-abcdef: no such run" in res.stderr
    assert _runs(db) == []
    assert "--retry" in run_cli("generate", "--help", timeout=60).stdout
