"""Find the final answer in a completion: `\\boxed{}`, `<answer>` tags, or the summary's last statement.

A last line that opens with GSM8K's marker, `#### 18` (its data's) or `A: 18` (the model solutions that
openai/grade-school-math ships), holds the answer after the marker: read whole, math-verify takes `A: 18` for a/18.

With `think`, only the summary after `</think>` is searched, so a guess made while reasoning never counts.
"""

from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_ANSWER_IS = re.compile(r"(?:final answer|answer)\**\s*(?:is:?|:)\s*(.+)", re.I)  # also **Answer**: and **Answer:**
_MARKED = re.compile(r"(?:####|A:)\s*(.+)")  # GSM8K's last line: `#### 18`, `A: 18`
_SAYS = re.compile(r"=|\bis\b|\bequals\b|\bequal to\b|\bgives\b", re.I)


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning, summary); reasoning is None when there is no closed think block."""
    head, sep, tail = text.rpartition("</think>")
    if not sep:
        return None, text
    return head.split("<think>", 1)[-1], tail


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str, think: bool = True) -> str | None:
    summary = split_think(text)[1] if think else text
    if think and "</think>" not in text:
        return None
    lines = [ln.strip() for ln in summary.strip().splitlines() if ln.strip()]
    found = last_boxed(summary)
    if found is None and (tags := _ANSWER_TAG.findall(summary)):
        found = tags[-1]
    if found is None and lines and (marked := _MARKED.match(lines[-1])):
        found = marked[1]
    if found is None and (said := _ANSWER_IS.findall(summary)):
        found = said[-1]
    if found is None:
        if not lines:
            return None
        found = _after_relation(lines[-1].rstrip(" .!")) or lines[-1]
    return clean(found)


def _after_relation(line: str) -> str | None:
    """What follows the line's last `=` outside braces, else its first `is`, `equals` or `gives`:
    `S = \\sum_{k=0}^{n} k` ends with the sum, not with `0}^{n} k`."""
    depth = [0]
    for ch in line:
        depth.append(depth[-1] + {"{": 1, "}": -1}.get(ch, 0))
    said = [m for m in _SAYS.finditer(line) if depth[m.start()] == 0]
    equals = [m for m in said if m[0] == "="]
    if not said:
        return None
    return line[(equals or said)[-1 if equals else 0].end() :].strip() or None


def clean(answer: str) -> str | None:
    a = answer.strip().rstrip(".!").strip()
    a = a.strip("*").strip()  # markdown bold, whole or cut by the label (`**Answer:** 42`)
    a = a.strip("$ ").rstrip(".!").strip()
    if a.startswith("\\(") and a.endswith("\\)"):
        a = a[2:-2].strip()
    return a or None
