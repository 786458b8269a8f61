"""The LLM judge in a real run: the bundled model answers general prompts on vLLM, then judges the answers."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, rows, run_cli

from filters.judge import TEMPLATE, template_sha

pytestmark = pytest.mark.slow


def test_general_prompts_are_judged_and_the_judge_is_recorded(tmp_path):
    db = tmp_path / "f.duckdb"
    res = run_cli(
        "generate",
        str(ROOT / "recipes" / "general_judge.yaml"),
        "--db",
        str(db),
        "--limit",
        "2",
        "--set",
        "rejection.max_samples=2",
        "--set",
        "judge.on_canary=flag",  # a 135M judge fails its canaries (below): flagged, the run goes on
    )
    assert res.returncode == 0, res.stderr[-3000:]
    [(raw,)] = rows(db, "SELECT canaries FROM runs")
    assert set(json.loads(raw)["canaries"]) == {"empty", "colon", "thought_process", "solution", "step_by_step",
                                                "question_repeated", "confident_wrong", "empty_symbols", "gibberish",
                                                "html", "prompt_injection"}  # fmt: skip
    cands = rows(db, "SELECT accepted, reason, scores FROM candidates")
    assert len(cands) == 2 * 2  # one round of 2 for each prompt
    judged = [(a, r, json.loads(s)) for a, r, s in cands if r not in ("truncated", "empty")]
    assert judged, "every answer failed the format check: nothing reached the judge"
    for accepted, reason, scores in judged:
        assert reason in (None, "judge_low_score", "judge_unparsable")
        assert scores["judge_model"] == "smollm2-135m-instruct"
        assert scores["judge_prompt_sha"] == template_sha(TEMPLATE) and isinstance(scores["judge_reply"], str)
        assert accepted == (reason is None)
        if reason != "judge_unparsable":
            assert 1 <= scores["judge_score"] <= 10 and accepted == (scores["judge_score"] >= 7)
    assert rows(db, "SELECT count(*) FROM examples e JOIN candidates c USING (candidate_id) WHERE NOT c.accepted") == [
        (0,)
    ]


def test_a_135m_judge_is_refused_by_its_canaries(tmp_path):
    """The bundled model as a judge fails answers that say nothing on the demo's prompts (it passes some, or gives
    no score it can be held to): the run stops before sampling, says which, and records it."""
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(ROOT / "recipes" / "general_judge.yaml"), "--db", str(db), "--limit", "3",
                  "--set", "judge.on_canary=refuse")  # fmt: skip
    assert res.returncode != 0 and "failed canary answers that say nothing" in res.stderr, res.stderr[-3000:]
    assert "judge.on_canary=flag" in res.stderr
    [(status, raw)] = rows(db, "SELECT status, canaries FROM runs")
    fooled = {name: r for name, r in json.loads(raw)["canaries"].items() if r["passed"] or r["unparsable"]}
    assert status == "judge_refused" and fooled and all(r["of"] == 3 for r in fooled.values())
    assert rows(db, "SELECT count(*) FROM candidate_rows") == [(0,)]  # refused before a sample was drawn
