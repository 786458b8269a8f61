"""A second opinion on math verdicts, for `factory audit` and the judge cascade (`verify.cascade: judge`): its own
answer extraction and its own equivalence, sharing no code with the verify stage (filters/answer.py,
filters/math_answer.py, filters/math_written.py, math-verify, sympy).

Where the two disagree, one of them is wrong, and a person (`factory audit --label`) or the cascade's LLM judge
settles it. So this one is narrow on purpose: it decides only what it can decide plainly, and says "undecided" (None)
for the rest, which the audit reports as such instead of guessing and the cascade does not send to its judge.

- The answer: the last \\boxed{...} (or \\fbox) after the reasoning (after the last </think>), braces balanced; else
  GSM8K's last `#### N` or `A: N` line; else the value after the last "answer is" / "Answer:"; else the right side
  of the last "=" on the last line that has one (GSM8K's <<calculator notes>> left out); else the last number.
- Equal: both read as exact rational numbers (integers, decimals, thousands commas in groups of three, also written
  {,}, \\frac{a}{b}, a/b, a leading minus, a trailing %, which may also be dropped) and the same number; or the same
  text once LaTeX spacing, \\left/\\right, \\text{}, $ and a closing full stop are gone. Tuples and lists, (a, b) or
  [a, b], item by item.
- Not equal: both numbers, and different; or no answer at all.
- Undecided: everything else (radicals, pi, expressions, intervals against sets, units).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_SAID = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_MARKED = re.compile(r"^\s*(?:####|A:)\s*(.+)$", re.MULTILINE)  # GSM8K's two ways: `#### 18`, `A: 18`
_CALC = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator notes, 9*2=<<9*2=18>>18
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|\\left|\\right|\\displaystyle|\$")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def opinion(text: str, reference: dict) -> tuple[bool | None, str]:
    """Whether a math answer is right by this second opinion (None: it cannot tell), and what it read."""
    gold = reference.get("answer")
    if gold is None:
        return None, "no reference answer"
    answer = final_answer(text)
    if answer is None:
        return False, f"no answer found (reference {gold})"
    return same(str(gold), answer), f"read {answer!r}, reference {gold!r}"


def final_answer(text: str) -> str | None:
    """The answer a response gives, read as above; None when it gives none."""
    after = _CALC.sub("", text.rsplit("</think>", 1)[-1])
    boxed = _last_box(after)
    if boxed is not None:
        return boxed.strip()
    marked = _MARKED.findall(after)
    if marked:
        return marked[-1].strip().rstrip(".").strip()
    said = _SAID.findall(after)
    if said:
        return said[-1].strip().rstrip(".").strip()
    lines = [ln for ln in after.strip().splitlines() if "=" in ln]
    if lines:
        return lines[-1].rsplit("=", 1)[1].strip().rstrip(".").strip() or None
    numbers = _NUMBER.findall(after)
    return numbers[-1] if numbers else None


def _last_box(text: str) -> str | None:
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    depth = 1
    for j in range(starts[-1], len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[starts[-1] : j]
    return None


def same(gold: str, answer: str) -> bool | None:
    """Whether `answer` is `gold`: True, False, or None (cannot tell)."""
    g, a = _plain(gold), _plain(answer)
    if g == a:
        return True
    gi, ai = _items(g), _items(a)
    if gi is not None and ai is not None:
        if len(gi) != len(ai):
            return False if all(_number(x) is not None for x in gi + ai) else None
        votes = [same(x, y) for x, y in zip(gi, ai, strict=True)]
        return False if False in votes else None if None in votes else True
    gn, an = _number(g), _number(a)
    if gn is not None and an is not None:
        return any(x == y for x in gn for y in an)
    return None


def _plain(s: str) -> str:
    s = _TEXT.sub(r"\1", s)
    s = _SPACING.sub("", s).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    s = re.sub(r"\s+", "", s).rstrip(".")
    while s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]):
        s = s[1:-1]
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _items(s: str) -> list[str] | None:
    """The items of a tuple or list written (a, b) or [a, b]; None for anything else."""
    if len(s) < 2 or (s[0], s[-1]) not in (("(", ")"), ("[", "]")):
        return None
    inner, out, depth, cur = s[1:-1], [], 0, ""
    for ch in inner:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out if len(out) > 1 and all(out) else None


def _number(s: str) -> list[Fraction] | None:
    """The exact values `s` may mean (a percent: with and without the percent), or None when it is not a number."""
    percent = s.endswith("\\%") or s.endswith("%")
    s = s.removesuffix("\\%").removesuffix("%")
    value = _rational(s)
    if value is None:
        return None
    return [value, value / 100] if percent else [value]


def _rational(s: str) -> Fraction | None:
    m = _FRAC.match(s)
    if m:
        top, bottom = _rational(m.group(2)), _rational(m.group(3))
        if top is None or not bottom:
            return None
        return (-1 if m.group(1) else 1) * top / bottom
    if "/" in s:
        top, _, bottom = s.partition("/")
        t, b = _rational(top), _rational(bottom)
        return t / b if t is not None and b else None
    if "," in s:
        if not _THOUSANDS.match(s):
            return None
        s = s.replace(",", "")
    if not re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", s):
        return None
    return Fraction(s)
