"""Truncation that is noticed: the window's share cut at max_tokens, said once on screen and in the store, with a
suggested max_tokens; the rule on its own, through the sampler (a scripted engine), and through the real CLI."""

from __future__ import annotations

import json
import math
import random

import fakes
import pytest
from conftest import rows, run_cli

from factory import recipe as recipes
from factory import sources, truncation
from factory.recipe import SourceConfig
from factory.sampler import Job, sample
from factory.store import StoreReader
from factory.workers import VerifyPool


def test_the_notice_comes_once_the_window_is_full_and_past_the_share():
    w = truncation.Watch(max_tokens=100, share=0.05, window=40)
    assert w.see([(50, False, True)] * 38 + [(100, True, False)] * 1) is None  # 39 seen: the window is not full
    n = w.see([(100, True, False)])  # 2 of 40 cut: 5%, not past it
    assert n is None
    n = w.see([(100, True, False)])  # the window slides: 3 of the last 40
    assert n["cut"] == 3 and n["window"] == 40 and n["share"] == pytest.approx(3 / 40) and n["at_candidate"] == 41
    assert n["lengths"]["max"] == 100 and n["lengths"]["p50"] == 50 and n["accepted_p95"] == 50
    assert n["suggested_max_tokens"] > 100 and n["suggested_max_tokens"] % truncation.ROUND_TO == 0
    assert w.see([(100, True, False)] * 40) is None  # said once
    assert "hit max_tokens=100" in truncation.line(n) and "sampling.max_tokens=" in truncation.line(n)


def test_a_short_run_is_checked_over_all_it_drew_at_its_end():
    w = truncation.Watch(max_tokens=64, share=0.05, window=200)
    assert w.see([(10, False, True)] * 10 + [(64, True, False)]) is None
    assert w.finish()["cut"] == 1
    quiet = truncation.Watch(max_tokens=64, share=0.05, window=200)
    quiet.see([(10, False, True)] * 30)
    assert quiet.finish() is None


def test_the_suggestion_finds_the_length_95_percent_of_answers_need():
    """Log-normal lengths cut at their 80th percentile: the censored fit recovers the uncut 95th percentile."""
    rng = random.Random(1)
    full = [math.exp(rng.gauss(5.5, 0.5)) for _ in range(4000)]
    cap = int(sorted(full)[int(0.8 * len(full))])
    ended = [int(x) for x in full if x < cap]
    q95 = truncation.censored_quantile(ended, len(full) - len(ended), cap)
    truth = sorted(full)[int(0.95 * len(full))]
    assert abs(q95 - truth) / truth < 0.1
    assert truncation.censored_quantile(ended, len(full) - len(ended), cap) > cap


@pytest.fixture(scope="module")
def pool():
    with VerifyPool(1, timeout=20) as p:
        p.wait_ready()
        yield p


def test_the_sampler_says_it_once_in_the_tally_and_the_store_and_not_again_on_resume(pool, store):
    prompts = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=12, seed=0))
    raw = {
        "source": {"kind": "reasoning_gym", "name": "basic_arithmetic"},
        "prompt": {"template": "{prompt}", "think": True},
        "sampling": {"max_tokens": 40},
        "rejection": {"accept_per_prompt": 1, "max_samples": 4, "round_size": 2},
        "truncation": {"share": 0.2, "window": 10},
    }
    r = recipes.parse(raw)
    answer = fakes.right_at(prompts, [{3}] * len(prompts))
    long = {p.prompt for p in prompts[::2]}  # half the prompts' answers run to the cap
    engine = fakes.ScriptedEngine(answer, tokens=lambda u, k: 40 if u in long else 8, cut=lambda u, k: u in long)
    run = store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})
    tally = sample(Job(r, prompts[:6], store, run), engine, pool)
    assert len(tally.notices) == 1 and "hit max_tokens=40" in tally.notices[0]
    cut = rows_of(
        store,
        f"SELECT count(*) FILTER (WHERE finish_reason = 'length'), count(*) FROM candidates WHERE run_id = '{run}'",
    )
    assert tally.truncated == cut[0][0] > 0 and tally.candidates == cut[0][1]
    stored = store.notices(run)["truncation"]
    assert stored["max_tokens"] == 40 and stored["share"] > 0.2 and stored["suggested_max_tokens"] >= 104
    again = sample(Job(r, prompts, store, run), engine, pool)  # the same run, resumed with more prompts
    assert again.notices == [] and again.candidates > tally.candidates


def rows_of(store, sql: str) -> list[tuple]:
    return store.query(sql)[1]


@pytest.mark.slow
def test_the_cli_says_it_and_stats_shows_the_share_with_the_bundled_model(tmp_path, demo_recipe):
    """SmolLM2 given 6 tokens to answer in: most answers are cut; the run says so, stores it, and stats shows it."""
    db = tmp_path / "f.duckdb"
    args = ["--limit", "8", "--set", "sampling.max_tokens=6", "--set", "truncation.window=10"]
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args)
    assert res.returncode == 0, res.stderr[-3000:]
    [(notices, cut, n)] = rows(
        db,
        """SELECT any_value(r.notices), count(*) FILTER (WHERE c.finish_reason = 'length'), count(*)
           FROM runs r JOIN candidates c USING (run_id)""",
    )
    n_cut = json.loads(notices)["truncation"]
    assert cut / n > 0.05 and n_cut["max_tokens"] == 6 and n_cut["suggested_max_tokens"] >= 64
    assert res.stderr.count("hit max_tokens=6") == 1  # said once (the summary repeats it as a note: not here)
    stats = run_cli("stats", "--db", str(db), "--json")
    [run] = json.loads(stats.stdout)["runs"]
    assert run["truncated"] == cut and run["truncated_share"] == pytest.approx(cut / n)
    assert StoreReader(db).notices(run["run_id"])["truncation"]["cut"] > 0
