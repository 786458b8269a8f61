"""Math answers as people write them, rewritten into forms math-verify reads as meant, before it parses them.

Left alone, math-verify reads `12 000` as 12*000 = 0, `2\\mathrm{e}` as 2 (the e taken for a unit), `1 2` as 3,
`\\frac{1}{3}.` not at all, and `1\\frac{1}{2}\\%` as 1 (a failed LaTeX parse falling back to the leading number).
Each rewrite here is one a reader makes without thinking. A form a reader could take two ways is not read at all
(`unreadable`), so that neither reading lets a wrong answer in: a right answer turned away costs another sample, a
wrong one let in becomes training data.

- Thousands: a group of 1-3 digits then groups of exactly three, joined by a thin space (`12\\,000`), a space,
  `~`, `{,}` or `,\\!` is one number. Nobody writes a list or a product that way.
- Plain commas also make lists (`1, 2`, `1,2`, `(1,234)`); `commas` decides which by the pattern and the place, see
  there.
- A decimal comma (`3,5`) is read only in the answer, only when the whole answer is that number, and only
  against a gold written as a decimal with a point: a gold `3,5` may be the roots 3 and 5, and a gold 7/2 does not
  say the question wanted a decimal.
- `\\mathrm{e}` and `\\mathrm{i}` are Euler's e and the imaginary unit, as a bare e and i are.
- A mixed number (`4\\frac{4}{9}`, `-2\\tfrac12`) is 40/9, -5/2. Next to a factor (`2\\frac{1}{2}x`) it could be a
  product, so such an answer is not read.
- Punctuation that ends the sentence (`$\\frac{1}{3}.$`) is not part of the answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UPRIGHT = re.compile(r"\\(?:mathrm|operatorname)\s*(?:\{\s*([ei])\s*\}|\s([ei])\b)")
_SEP = r"(?:\s*(?:\{,\}|\{\\,\}|,\\!|\\[,;:! ]|~)\s*|\s+)"  # a thin space, a space, {,} or ,\! between groups
_SPACED = re.compile(rf"(?<![\w.^_])[1-9]\d{{0,2}}(?:{_SEP}\d{{3}})+(?!\d)")
_COMMAS = re.compile(r"(?<![\w.^_])[1-9]\d{0,2}(?:,\d{3})+(?!\d)")
_OPENS, _CLOSES = ("(", "[", "\\{", "\\langle", ",", ";"), (")", "]", "\\}", "\\rangle", ",", ";")
_COMMAND_BEFORE = re.compile(r"\\[a-zA-Z]+\s*$")  # \frac 1 234 is not 1 thousand 234
_SPACE = r"(?:\s|\\[,;:! ]|\\q?quad\b)"
_TRAIL = re.compile(rf"{_SPACE}*[.,;:]+{_SPACE}*(?=(?:\$\$?|\\\)|\\\])?\s*$)")
_FRAC = r"\\[dt]?frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))"
_MIXED = re.compile(rf"(?<![\w.^_])(\d+)\s*(?:\\[,;: ]\s*)?{_FRAC}")
_NOT_FACTORS = (
    "text",
    "textrm",
    "mbox",
    "mathrm",
    "right",
    "cdot",
    "times",
    "div",
    "pm",
    "mp",
    "le",
    "ge",
    "leq",
    "geq",
    "neq",
    "lt",
    "gt",
    "approx",
    "quad",
    "qquad",
    "dots",
    "ldots",
    "cdots",
    "end",
)
_TOKEN_AFTER = re.compile(r"\s*(\\[a-zA-Z]+|[a-zA-Z(])")
_TOKEN_BEFORE = re.compile(r"(\\[a-zA-Z]+|[a-zA-Z)\]}])\s*$")
_NUMERALS_APART = re.compile(rf"(?<![\w.^_\\])\d+(?:\.\d+)?{_SPACE}+\d")  # `1 2`, which math-verify reads as 3
_DECIMAL = re.compile(r"[-+]?\d*\.\d+")
_DECIMAL_COMMA = re.compile(r"([-+]?\d+)(?:,|\{,\})(\d+)")


def normalise(answer: str) -> str:
    """The answer with the forms that have one reading rewritten into ones math-verify reads that way."""
    a = _UPRIGHT.sub(lambda m: m[1] or m[2], answer)
    a = _SPACED.sub(lambda m: _join(m, a), a)
    a = _MIXED.sub(_mixed, a)
    return _TRAIL.sub("", a)


def _join(m: re.Match, text: str) -> str:
    if _COMMAND_BEFORE.search(text[: m.start()]):
        return m[0]
    return re.sub(r"\D", "", m[0])


def _mixed(m: re.Match) -> str:
    """4\\frac{4}{9} as \\frac{40}{9}; left as written next to a factor, where it may be a product."""
    if not _proper(m) or _next_to_factor(m):
        return m[0]
    whole, num, den = int(m[1]), int(m[2] or m[3]), int(m[4] or m[5])
    return f"\\frac{{{whole * den + num}}}{{{den}}}"


def _proper(m: re.Match) -> bool:
    """2\\frac{1}{3} can be a mixed number; 2\\frac{3}{2} cannot, and is more likely 2 times 3/2."""
    return 0 < int(m[2] or m[3]) < int(m[4] or m[5])


def commas(answer: str) -> str:
    """The answer with each plain-comma digit run in the thousands pattern read as one number, or as a list.

    The pattern is a first group of 1-3 digits, not zero, then groups of exactly three with no space after the
    comma (`3,250`, `50,625`, `1,234,567`). Such a run on its own is one number, in the gold as in the answer: of
    MATH's 5,000 test golds five hold one, and four of them are numbers (`15,600`, `58,500`); its lists have a space
    after the comma or groups that break the pattern (`-2, 1`, `1,-2`, `3,5`). Beside a bracket or another comma
    (`(1,234)`, `\\{1,234\\}`, `[-36,104]`, `1,234, 5`) a run is a list: brackets make a tuple, a set or an
    interval, and a tuple stays one (the gold `(1,234)` never takes 1234). A run whose later groups start with 0
    (`1,000`, `(1,000)`) is a number anywhere: list items are not zero-padded.

    The risk, rare: a list written without spaces in the pattern is read as a number. The fifth of those golds is
    one, the angles `70,110` (precalculus: sqrt(3) cos 10 = cos 40 + sin x). Read as 70110 it takes the answer
    70110 (wrong, and no answer a model gives to an angle in [0, 360]) and `70,110` (right, written as the gold
    is), and turns away the right answer `70, 110`. Likewise a gold `1,000` is never the list 1, 0.
    """
    return _COMMAS.sub(_comma_run, answer)


def _comma_run(m: re.Match) -> str:
    groups = m[0].split(",")
    if any(g.startswith("0") for g in groups[1:]):
        return "".join(groups)
    before, after = m.string[: m.start()].rstrip(), m.string[m.end() :].lstrip()
    in_list = before.endswith(_OPENS) or after.startswith(_CLOSES)
    return ", ".join(groups) if in_list else "".join(groups)


def decimal_comma(gold: str, answer: str) -> bool:
    """True when the answer is the gold's decimal written with a decimal comma (3,5 for the gold 3.5)."""
    g, a = _bare(gold), _bare(answer)
    m = _DECIMAL_COMMA.fullmatch(a)
    if not (_DECIMAL.fullmatch(g) and m) or _COMMAS.fullmatch(a.lstrip("+-")):
        return False  # 1,234 is a thousand and more, never 1.234
    return Fraction(g) == Fraction(f"{m[1]}.{m[2]}")


def _bare(answer: str) -> str:
    a = answer.strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\boxed{", "}")):
        if a.startswith(left) and a.endswith(right) and len(a) > len(left) + len(right):
            a = a[len(left) : -len(right)].strip()
    return _TRAIL.sub("", a).strip()  # spaces inside stay: 3, 5 is a list, never 3.5


def unreadable(extracted: str) -> bool:
    """True when what math-verify read cannot be trusted: cut short, numerals side by side, or a mixed number that
    may be a product."""
    bare = extracted.replace("\\{", "").replace("\\}", "")
    if bare.count("{") != bare.count("}"):
        return True  # 1 - \frac{1}{ from a failed parse of 1 - \frac{1}{\text{e}}
    for m in _NUMERALS_APART.finditer(extracted):
        if not _COMMAND_BEFORE.search(extracted[: m.start()]):
            return True
    return any(_next_to_factor(m) or not _proper(m) for m in _MIXED.finditer(extracted))


def _next_to_factor(m: re.Match) -> bool:
    """True when a letter, a bracket or a command other than an operator, a unit or a space is beside the match."""
    after, before = _TOKEN_AFTER.match(m.string, m.end()), _TOKEN_BEFORE.search(m.string[: m.start()])
    return any(t and t[1].lstrip("\\") not in _NOT_FACTORS for t in (after, before))
