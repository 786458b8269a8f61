"""The format check: R1's template (reasoning in one closed <think> block, then a summary), and not cut off."""

from __future__ import annotations

from filters.base import Candidate, Verdict, accept, reject


def check_format(c: Candidate) -> Verdict:
    if not c.text.strip():
        return reject("empty")
    if c.finish_reason == "length":
        return reject("truncated")
    if not c.think:
        return reject("unexpected_think") if "</think>" in c.text else accept()
    if c.text.count("</think>") != 1 or c.text.count("<think>") > 1:
        return reject("unclosed_think")
    if not c.text.split("</think>", 1)[1].strip():
        return reject("no_summary")
    return accept()
