"""A budget that stops cleanly: the rule on its own, the sampler stopping on whole rounds and going on with a larger
one (a scripted engine), a `factory generate` killed right at its budget and resumed (a replayed recording, in a
subprocess), and the real bundled model stopped and resumed through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import fakes
import pytest
from conftest import DEMO_RECORDING, DEMO_SETTINGS, FACTORY, REPLAY, ROOT, rows, run_cli

from factory import budget, sources
from factory import recipe as recipes
from factory.errors import FactoryError
from factory.recipe import SourceConfig
from factory.sampler import Job, sample
from factory.workers import VerifyPool


def _tally(**kw):
    base = {"tokens": 0, "prompt_tokens": 0, "engine_seconds": 0.0, "candidates": 0, "seconds": 0.0}
    base |= {"prompts": 0, "prompts_done": 0}
    return SimpleNamespace(**(base | kw))


def test_the_rule_counts_what_the_samples_out_will_cost():
    b = budget.Budget(tokens=1000)
    assert budget.reached(b, _tally(), outstanding=0, max_tokens=64) is None
    assert budget.reached(b, _tally(), outstanding=16, max_tokens=64) == "tokens"  # none committed: max_tokens each
    t = _tally(tokens=400, prompt_tokens=100, candidates=10)  # 50 tokens a sample so far
    assert budget.reached(b, t, outstanding=9, max_tokens=64) is None  # 500 + 450 < 1000
    assert budget.reached(b, t, outstanding=10, max_tokens=64) == "tokens"
    h = budget.Budget(hours=1)
    assert budget.reached(h, _tally(engine_seconds=3000, candidates=10), 1, 64) is None  # 3300 s < 3600
    assert budget.reached(h, _tally(engine_seconds=3000, candidates=10), 20, 64) == "hours"
    assert not budget.Budget() and budget.reached(budget.Budget(), t, 10**9, 64) is None


def test_spend_the_eta_and_the_line():
    b = budget.Budget(tokens=2000, hours=1)
    t = _tally(tokens=900, prompt_tokens=100, engine_seconds=360.0, seconds=10.0)
    assert budget.spent(t) == {"tokens": 1000, "hours": 0.1}
    assert budget.eta(b, t, {"tokens": 0.0, "hours": 0.0}) == pytest.approx(10.0)  # 100 tokens/s, 1000 left
    assert budget.eta(b, t, {"tokens": 1000.0, "hours": 0.1}) is None  # nothing spent by this process yet
    t.prompts, t.prompts_done = 100, 90  # 9 prompts a second: the job ends before the budget
    assert budget.eta(b, t, {"tokens": 0.0, "prompts_done": 0}) == pytest.approx(10 / 9)
    assert budget.line(b, t) == "tokens 1k/2k (50%) · hours 0.1/1 (10%)"


def test_the_cli_form_becomes_overrides_and_a_bad_one_says_how():
    assert budget.parse(["tokens=3e9", "hours=12"]) == ["budget.tokens=3e9", "budget.hours=12"]
    for bad in ("dollars=5", "tokens", "tokens=lots"):
        with pytest.raises(FactoryError, match="--budget"):
            budget.parse([bad])


def test_the_budget_is_not_part_of_the_recipe_s_identity(demo_recipe):
    plain = recipes.load(demo_recipe)
    capped = recipes.load(demo_recipe, ["budget.tokens=3e9", "budget.hours=2", "truncation.share=0.2"])
    assert capped.budget.tokens == 3e9 and capped.hash() == plain.hash()
    with pytest.raises(FactoryError, match="budget: tokens -1"):
        recipes.load(demo_recipe, ["budget.tokens=-1"])


@pytest.fixture(scope="module")
def pool():
    with VerifyPool(1, timeout=20) as p:
        p.wait_ready()
        yield p


def _per_prompt(store, run: str) -> dict:
    sql = f"""SELECT prompt_id, list(sample_index ORDER BY sample_index) FROM candidates WHERE run_id = '{run}'
              GROUP BY prompt_id"""
    return dict(store.query(sql)[1])


def test_the_sampler_stops_on_whole_rounds_and_a_larger_budget_goes_on(pool, store):
    prompts = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=10, seed=0))
    raw = {
        "source": {"kind": "reasoning_gym", "name": "basic_arithmetic"},
        "prompt": {"template": "{prompt}", "think": True},
        "rejection": {"accept_per_prompt": 1, "max_samples": 6, "round_size": 2, "batch_prompts": 2},
    }
    answer = fakes.right_at(prompts, [{4}] * len(prompts))  # every prompt: right at its 5th sample (3 rounds)
    engine = fakes.ScriptedEngine(answer, tokens=10)  # 10 + 10 prompt tokens a sample; counts k across the calls
    capped = recipes.parse(raw | {"budget": {"tokens": 400}})
    run = store.start_run("t", capped.hash(), capped.text, capped.model, "scripted", {}, {})
    first = sample(Job(capped, prompts, store, run), engine, pool)
    assert first.stopped == "budget" and first.budget == {"tokens": 400}
    spent = first.tokens + first.prompt_tokens
    assert 400 <= spent <= 400 + 2 * 2 * 20  # over it by the rounds out when it stopped at most (2 of 2 samples)
    got = _per_prompt(store, run)
    assert all(len(idx) % 2 == 0 and idx == list(range(len(idx))) for idx in got.values())  # whole rounds, in order
    again = sample(Job(capped, prompts, store, run), engine, pool)  # the same budget: spent already
    assert again.stopped == "budget" and again.new_candidates == 0
    more = recipes.parse(raw | {"budget": {"tokens": 10_000}})
    assert more.hash() == capped.hash()
    last = sample(Job(more, prompts, store, run), engine, pool)
    assert last.stopped is None and last.prompts_done == 10
    assert all(idx == list(range(6)) for idx in _per_prompt(store, run).values())  # 3 rounds each, none twice
    assert last.candidates == 60 and last.examples == 10
    assert last.tokens + last.prompt_tokens == 60 * 20  # the spend carried over the resumes, counted once


# a replayed real demo run in a subprocess, slowed to an engine's pace so that it can be killed mid-run
PACED = (*DEMO_SETTINGS, *REPLAY, "--set", "engine.replay_tokens_per_s=150")


def test_killed_right_at_the_budget_then_resumed_loses_nothing_and_draws_nothing_twice(tmp_path, demo_recipe):
    db, clean = tmp_path / "f.duckdb", tmp_path / "clean.duckdb"
    assert run_cli("generate", str(demo_recipe), "--db", str(clean), *PACED).returncode == 0
    whole = rows(clean, "SELECT prompt_id, sample_index, text, n_tokens FROM candidates ORDER BY ALL")
    total = sum(r[3] for r in whole)
    cap = str(total // 2)
    proc = subprocess.Popen(
        [FACTORY, "generate", str(demo_recipe), "--db", str(db), *PACED, "--budget", f"tokens={cap}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    snapshot = tmp_path / "f.duckdb.progress.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the moment it finds its budget reached, with the last rounds still out
        assert proc.poll() is None, "the run ended before it could be killed at its budget"
        seen = json.loads(snapshot.read_text()) if snapshot.exists() else {}
        if seen.get("stopping") and seen.get("candidates"):
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert rows(db, "SELECT status FROM runs") == [("running",)]  # killed: it could not mark itself
    before = rows(db, "SELECT prompt_id, sample_index, text FROM candidates ORDER BY ALL")
    assert 0 < len(before) < len(whole)

    res = run_cli("generate", str(demo_recipe), "--db", str(db), *PACED, "--budget", f"tokens={cap}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert rows(db, "SELECT status FROM runs") == [("budget",)] and "at the budget" in res.stderr
    stopped = rows(db, "SELECT prompt_id, sample_index, text FROM candidates ORDER BY ALL")
    assert set(before) <= set(stopped)  # what was committed before the kill is kept as it was

    res = run_cli("generate", str(demo_recipe), "--db", str(db), *PACED)  # no budget: the rest of the job
    assert res.returncode == 0 and "(resumed)" in res.stderr, res.stderr[-3000:]
    assert rows(db, "SELECT status, budget FROM runs") == [("complete", "{}")]
    after = rows(db, "SELECT prompt_id, sample_index, text, n_tokens FROM candidates ORDER BY ALL")
    assert after == whole  # the same samples as a run never stopped: nothing lost, nothing twice
    assert rows(db, "SELECT count(*) FROM examples") == rows(clean, "SELECT count(*) FROM examples")
    assert DEMO_RECORDING.exists()


@pytest.mark.slow
def test_the_bundled_model_stops_at_its_budget_and_goes_on(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    args = ["--limit", "6", "--set", "rejection.round_size=2", "--set", "rejection.max_samples=4"]
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args, "--budget", "tokens=300")
    assert res.returncode == 0, res.stderr[-3000:]
    [(status, spent, n)] = rows(
        db, "SELECT r.status, sum(n_tokens + n_prompt_tokens), count(*) FROM runs r JOIN candidates USING (run_id) "
        "GROUP BY ALL",
    )  # fmt: skip
    assert status == "budget" and 0 < n < 6 * 4 and spent < 300 + 2 * 2 * (64 + 60)
    seconds = rows(db, "SELECT count(*) FILTER (WHERE engine_seconds > 0), count(*) FROM candidates")
    assert seconds[0][0] == seconds[0][1]  # the ledger: every sample's share of the engine's time
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args, "--budget", "tokens=1e6")
    assert res.returncode == 0 and "(resumed)" in res.stderr, res.stderr[-3000:]
    assert rows(db, "SELECT status FROM runs") == [("complete",)]
    per = rows(db, "SELECT list(sample_index ORDER BY sample_index) FROM candidates GROUP BY prompt_id")
    assert len(per) == 6 and all(idx == list(range(len(idx))) for (idx,) in per)
