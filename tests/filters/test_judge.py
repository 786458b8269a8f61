"""The judge's prompt and the reading of its reply (the model call itself is tested in tests/factory)."""

from __future__ import annotations

import pytest

from filters.judge import JudgeConfig, judge_messages, parse_score, template_sha, verdict


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Clear and correct.\nScore: 8", 8.0),
        ("The answer is wrong. Score: 2/10", 2.0),
        ("**Score:** 9", 9.0),
        ("score = 7.5", 7.5),
        ("I would give it 6/10.", 6.0),
        ("Rating: [[4]]", 4.0),
        ("8", 8.0),
        ("9. The answer is right.", 9.0),
        ("3 apples are red", None),  # a number that is not a grade
        ("Score: 3\nOn reflection, Score: 5", 5.0),  # the last grade counts
        ("Score: 11", None),  # out of range
        ("Score: 0", None),
        ("A fine answer.", None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_verdict_thresholds_and_records_the_judge():
    cfg = JudgeConfig(threshold=7)
    good, bad, junk = (verdict(cfg, "judge-m", r) for r in ("Score: 7", "Score: 6", "no grade"))
    assert (good.accepted, good.reason) == (True, None)
    assert (bad.accepted, bad.reason) == (False, "judge_low_score")
    assert (junk.accepted, junk.reason) == (False, "judge_unparsable")
    for v in (good, bad, junk):
        assert v.scores["judge_model"] == "judge-m" and v.scores["judge_prompt_sha"] == template_sha(cfg.template)
    assert good.scores["judge_score"] == 7 and "judge_score" not in junk.scores


def test_messages_hold_prompt_reference_and_only_the_summary():
    cfg = JudgeConfig()
    [msg] = judge_messages(cfg, "Capital of France?", "Paris", "<think>maybe Lyon</think>It is Paris.")
    text = msg["content"]
    assert "Capital of France?" in text and "[Reference]\nParis" in text and "It is Paris." in text
    assert "Lyon" not in text  # the reasoning is not graded
    [msg] = judge_messages(cfg, "Say hi.", None, "Hi!")
    assert "[Reference]" not in msg["content"] and "{reference_block}" not in msg["content"]
