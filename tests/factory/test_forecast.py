"""The pilot forecast: the estimator and its interval, the seeded pilot, the classes, and `factory generate
--forecast` whose pilot the full run resumes from (a replayed recording, then the bundled model)."""

from __future__ import annotations

import random
import re

import pytest
from conftest import DEMO_SETTINGS, REPLAY, rows, run_cli

from factory import forecast as fc
from factory import sources
from factory.errors import FactoryError
from factory.recipe import SourceConfig


def test_a_total_is_the_pilot_s_own_plus_the_rest_at_its_mean():
    point, lo, hi = fc.total([1, 2, 3, 6], 100)
    assert point == pytest.approx(12 + 96 * 3) and lo < point < hi and lo >= 12
    assert fc.total([5, 5, 5], 3) == (15, 15, 15)  # the pilot is the whole job: nothing to guess
    assert fc.total([4], 10)[0] == 40


def test_the_interval_covers_the_truth_about_nine_times_in_ten():
    """Pilots of 5% from a job of 2000 prompts whose samples are drawn as the demo's are (a prompt's pass rate per
    sample, samples until the first pass, at most 8): the 90% interval holds the job's true total ~90% of the time."""
    rng = random.Random(0)
    rates = [rng.choice([0.05, 0.3, 0.6, 0.9]) for _ in range(2000)]
    samples = [next((k for k in range(1, 9) if rng.random() < p), 8) for p in rates]
    truth = sum(samples)
    inside = 0
    for seed in range(200):
        pilot = random.Random(seed).sample(samples, 100)
        _, lo, hi = fc.total(pilot, len(samples))
        inside += lo <= truth <= hi
    assert 0.8 <= inside / 200 <= 0.97


def test_examples_get_a_proportion_s_interval_that_holds_for_a_small_pilot():
    """A job of 200 prompts, a quarter of them solved (one example each), pilots of 10: Wilson's interval holds the
    job's examples ~90% of the time, and a pilot that solved none still leaves room above zero (the normal interval,
    from the pilot's own spread, is then zero wide)."""
    rng = random.Random(3)
    solved = [int(rng.random() < 0.29) for _ in range(200)]
    truth = sum(solved)
    inside = sum(
        lo <= truth <= hi for _, lo, hi in (fc.total(random.Random(s).sample(solved, 10), 200, 1) for s in range(300))
    )
    assert 0.85 <= inside / 300 <= 0.97
    assert fc.total([0] * 10, 200) == (0, 0, 0) and fc.total([0] * 10, 200, bound=1)[2] > 20
    _, lo, hi = fc.total([1] + [0] * 9, 199, bound=1)  # the hard job's pilot (docs/benchmarks.md): 53 and 57 solved
    assert lo <= 53 and 57 <= hi <= 199


def test_the_pilot_is_a_seeded_share_of_distinct_prompts_in_source_order():
    prompts = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=40, seed=0))
    twice = prompts + prompts[:5]  # a repeated prompt is one prompt
    a, b = fc.pilot(twice, 0.1, seed=0), fc.pilot(twice, 0.1, seed=0)
    assert a == b and len(a) == 4 and len({p.prompt_id for p in a}) == 4
    assert [twice.index(p) for p in a] == sorted(twice.index(p) for p in a)
    assert fc.pilot(twice, 0.1, seed=1) != a
    assert len(fc.pilot(prompts, 0.001, seed=0)) == 1 and len(fc.pilot(prompts, 1.0, seed=0)) == 40


def test_the_pilot_share_reads_percent_or_fraction():
    assert fc.share("2%") == pytest.approx(0.02) and fc.share("0.05") == pytest.approx(0.05)
    for bad in ("0", "150%", "lots", "-1"):
        with pytest.raises(FactoryError, match="--pilot"):
            fc.share(bad)


def test_classes_are_by_the_pilot_s_pass_rate():
    costs = [
        fc.PromptCost("s", "math", samples=1, passed=1, examples=1, tokens=10, prompt_tokens=40),
        fc.PromptCost("s", "math", samples=8, passed=0, tokens=160, prompt_tokens=320, truncated=4),
        fc.PromptCost("s", "math"),  # set aside before sampling
        fc.PromptCost("s", "math", samples=4, passed=1, examples=1, tokens=40, prompt_tokens=160),
    ]
    f = fc.forecast(costs, 400, tokens_per_s=100.0)
    got = {c["difficulty"]: c for c in f.classes}
    assert list(got) == ["easy", "medium", "unsolved", "set aside"]
    assert got["unsolved"]["truncated_share"] == 0.5 and got["unsolved"]["tokens_per_sample"] == 20
    assert got["medium"]["samples_per_prompt"] == 4 and got["easy"]["share"] == 0.25
    assert f.totals["examples"][0] == pytest.approx(200) and f.totals["samples"][0] == pytest.approx(1300)
    assert f.hours(100.0)[0] == pytest.approx(f.totals["tokens"][0] / 100 / 3600)
    cols, table = fc.class_rows(f)
    assert len(table) == 4 and all(len(r) == len(cols) for r in table)
    assert [r[0] for r in fc.total_rows(f)][-1] == "time here"


def test_a_quoted_rate_is_found_by_the_model_s_name():
    assert fc.quoted("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")[1] > 0
    assert fc.quoted("smollm2-135m-instruct") is None


def _numbers(text: str, label: str) -> list[float]:
    line = next(line for line in text.splitlines() if label in line)
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*\.?\d*", line)]


def test_the_forecast_s_pilot_is_kept_and_the_full_run_resumes_from_it(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    args = [*DEMO_SETTINGS, *REPLAY]
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args, "--forecast", "--pilot", "50%")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "forecast of 8 prompts from a pilot of 4 (50%)" in res.stdout
    samples = _numbers(res.stdout, "│ samples ")
    [(run_id, status)] = rows(db, "SELECT run_id, status FROM runs")
    pilot = rows(db, "SELECT candidate_id, text FROM candidates ORDER BY 1")
    assert status == "pilot" and rows(db, "SELECT count(DISTINCT prompt_id) FROM candidates") == [(4,)]
    assert samples[0] >= len(pilot) and samples[1] <= samples[0] <= samples[2]

    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args)
    assert res.returncode == 0 and "(resumed)" in res.stderr, res.stderr[-3000:]
    assert rows(db, "SELECT run_id, status FROM runs") == [(run_id, "complete")]
    after = dict(rows(db, "SELECT candidate_id, text FROM candidates"))
    assert all(after[cid] == text for cid, text in pilot)  # the pilot's samples, kept as they were
    assert rows(db, "SELECT count(DISTINCT prompt_id) FROM candidates") == [(8,)]
    again = run_cli("generate", str(demo_recipe), "--db", str(db), *args, "--forecast", "--pilot", "50%")
    assert again.returncode == 0 and rows(db, "SELECT status FROM runs") == [("complete",)]  # a forecast draws nothing


@pytest.mark.slow
def test_the_bundled_model_s_forecast_then_the_full_run(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    args = ["--limit", "12", "--set", "rejection.max_samples=4"]
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args, "--forecast", "--pilot", "25%")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "forecast of 12 prompts from a pilot of 3 (25%)" in res.stdout and "time here" in res.stdout
    tokens = _numbers(res.stdout, "│ completion tokens")
    assert tokens[1] <= tokens[0] <= tokens[2] and tokens[0] > 0
    assert rows(db, "SELECT status, count(DISTINCT prompt_id) FROM runs JOIN candidates USING (run_id) GROUP BY 1") == [
        ("pilot", 3)
    ]
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args)
    assert res.returncode == 0 and "(resumed)" in res.stderr, res.stderr[-3000:]
    per = rows(db, "SELECT list(sample_index ORDER BY sample_index) FROM candidates GROUP BY prompt_id")
    assert len(per) == 12 and all(idx == list(range(len(idx))) for (idx,) in per)
    [(spent,)] = rows(db, "SELECT sum(n_tokens) FROM candidates")
    assert tokens[1] * 0.5 <= spent <= tokens[2] * 2  # the forecast's range, loosely: 3 pilot prompts say little
