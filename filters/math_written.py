"""Math answers as people write them, rewritten into forms math-verify reads as meant, before it parses them.

Left alone, math-verify reads `12 000` as 12*000 = 0, `2\\mathrm{e}` as 2 (the e taken for a unit), `1 2` as 3,
`\\frac{1}{3}.` not at all, and `1\\frac{1}{2}\\%` as 1 (a failed LaTeX parse falling back to the leading number).
Each rewrite here is one a reader makes without thinking. Where a form has two plausible readings the answer is
judged under both (`comma_readings`), or not read at all (`unreadable`), so that neither reading lets a wrong
answer in: a right answer turned away costs another sample, a wrong one let in becomes training data.

- Thousands: a group of 1-3 digits then groups of exactly three, joined by a thin space (`12\\,000`), a space,
  `~`, `{,}` or `,\\!` is one number. Nobody writes a list or a product that way.
- Plain commas also make lists (`1,2`, `(1,234)`). A digit run whose later groups start with 0 (`12,000`) is a
  number: list items are not zero-padded. Beside a bracket or another comma a run is a list; on its own
  (`12,500`) it is ambiguous, see `comma_readings`.
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
_NOT_FACTORS = ("text", "textrm", "mbox", "mathrm", "right", "cdot", "times", "div", "pm", "mp", "le", "ge", "leq",
                "geq", "neq", "lt", "gt", "approx", "quad", "qquad", "dots", "ldots", "cdots", "end")  # fmt: skip
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


def comma_readings(answer: str, numbers: bool = False) -> tuple[str, str]:
    """The answer with its plain-comma digit runs read as numbers, and read as lists where that is plausible.

    A zero-padded run (`1,000`) is a number in both readings: list items are not zero-padded. A run beside a
    bracket or another comma (`(12,102)`, `1,234, 5`) is a list in both. A run on its own (`12,500`) is 12500 in
    the first reading and the list 12, 500 in the second, and the caller accepts only when both are right; with
    `numbers` (the gold is one number, which a list can never be) it is a number in both.
    """
    joined = _COMMAS.sub(lambda m: _comma_run(m, alone_is_list=False, numbers=numbers), answer)
    listed = _COMMAS.sub(lambda m: _comma_run(m, alone_is_list=True, numbers=numbers), answer)
    return joined, listed


def _comma_run(m: re.Match, alone_is_list: bool, numbers: bool) -> str:
    groups = m[0].split(",")
    if any(g.startswith("0") for g in groups[1:]):
        return "".join(groups)
    before, after = m.string[: m.start()].rstrip(), m.string[m.end() :].lstrip()
    in_list = before.endswith(_OPENS) or after.startswith(_CLOSES)
    if in_list or (alone_is_list and not numbers):
        return ", ".join(groups)
    return "".join(groups)


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
