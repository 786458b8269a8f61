"""Math answers checked with math-verify: equivalent forms (fractions, radicals, sets, intervals) are equal.

math-verify parses and decides equivalence, with one guard on top: it compares numbers loosely, rounding floats to
6 places (1/3 = 0.333333, 1e-7 = 3e-7) and evaluating differences to 15 digits with tiny values chopped to zero
(1/2004! = 1/2006!, 2^-100 = 2^-101). A wrong answer let in becomes training data, while a right one turned away
costs only another sample, so here numbers are compared exactly:

- Two numbers are equal when their values are: rationals exactly (factorials and powers included), other values to
  40 significant digits and 40 places after the point, at a precision that grows with their size.
- A decimal is the exact value written: 0.5 = 1/2 and 0.\\overline{3} = 1/3, but 0.333 != 1/3 and 3.14159 != pi.
  A rounded decimal equals only a gold written as that decimal (the gold 0.33 takes 0.330, not 1/3: the gold may be
  exact, and the answer did not round as asked).
- A percent is a unit the answer may drop: the gold 12.5% takes 12.5% or 12.5 or 0.125; an answer of 7% matches the
  gold 7 (math-verify's rule for whole percents), but an answer of 0.5% never matches the gold 0.5.
- Units are dropped, never converted (30 degrees is not pi/6), but two different units are two answers (5 m is not
  5 cm, which math-verify would take).
- Numbers past 20,000 digits are equal only in the same form: telling them apart would take seconds.
- A set written with braces is never an interval: (1, 3) != {1, 3}. And ±2 is the set {-2, 2}, so it is not 2.
- Both answers are first read as people write them (filters/math_written.py): 12 000 and 12\\,000 are 12000,
  2\\mathrm{e} is 2e, 4\\frac{4}{9} is 40/9, a closing full stop is dropped, and 3,5 is 3.5 against the gold 3.5.
  A plain-comma run in the thousands pattern (3,250) is one number in either answer, a list only beside a bracket
  or another comma ((1,234) is a pair); a list has a space after its commas or breaks the pattern (3, 250; 1,-2).
  A form math-verify misreads is not read at all (1 2, which it takes for 3; LaTeX it could not parse).

math-verify's own timeout uses signals and so works only on a main thread; the caller runs this in a worker
process whose main thread it is, and kills the worker if a check runs past the hard limit.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache

import mpmath
from math_verify import ExprExtractionConfig, LatexExtractionConfig, grader, parse, verify
from sympy import Expr, FiniteSet, Float, Integer, Interval, N, Rational, UnevaluatedExpr

from filters.math_written import commas, decimal_comma, normalise, unreadable

_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]
_DIGITS = 40  # two closed forms that agree this far are one number; answers are never that close and different
_MAX_DIGITS = 20_000
_SCI = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)\b")  # 1.5e6, which LaTeX parsing reads as 1.5*e*6
_UNIT = re.compile(
    r"(?<=[\d}])\s*(?:\\[,;]\s*|~\s*)?"  # after a number, maybe a LaTeX space
    r"(?:\\(?:text|mbox|mathrm)\s*\{\s*([a-zA-Z ]+?)\s*\}"  # \text{ cm}
    r"|\s((?:[a-zA-Z]+\s+)*[a-zA-Z]{2,}))"  # " square cm", but not "2x" or "2 x"
    r"\s*(?:\^\s*\{?[23]\}?)?$"  # cm^2
)
_SAME_UNIT = {
    "centimeter": "cm",
    "centimetre": "cm",
    "meter": "m",
    "metre": "m",
    "kilometer": "km",
    "kilometre": "km",
    "millimeter": "mm",
    "millimetre": "mm",
    "inch": "in",
    "inche": "in",
    "foot": "ft",
    "feet": "ft",
    "second": "s",
    "sec": "s",
    "minute": "min",
    "hour": "h",
    "hr": "h",
    "kilogram": "kg",
    "gram": "g",
    "degree": "deg",
    "dollar": "usd",
}
_UNITS = set(_SAME_UNIT.values())
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\s*\{?(\d+)\}?")  # 0.1\overline{6}, which parses as 0.1 (or 0.)


@lru_cache(maxsize=4096)
def _parse(answer: str) -> list:
    """What math-verify reads in a normalised answer; [] when it reads nothing, or nothing to trust."""
    unit = _unit(answer)
    if unit and unit[0] in _UNITS:
        answer = answer[: unit[1]]  # one math-verify does not know (5 centimeters: 5*c*e*n*t*i)
    answer = answer.replace("\\$", "").replace("\\varnothing", "\\emptyset")
    answer = _SCI.sub(r"\1\\times 10^{\2}", _REPEATING.sub(_repeating, answer))
    if "$" in answer or "\\boxed" in answer:
        found = parse(answer, extraction_config=_CONFIG)  # a whole text: math-verify finds the answer in it
    else:
        found = parse(f"${answer}$", extraction_config=_CONFIG[:1])
        if found and isinstance(found[0], str) and "\\" in answer:
            return []  # LaTeX that did not parse: the expression reader would take its first number (1\frac12\% = 1)
        found = found if found and not isinstance(found[0], str) else parse(answer, extraction_config=_CONFIG)
    return [] if found and isinstance(found[-1], str) and unreadable(found[-1]) else found


def _repeating(m: re.Match) -> str:
    """A repeating decimal as the exact fraction it is: 0.1\\overline{6} is 1/10 + 6/90 = 1/6."""
    whole, fixed, period = m.groups()
    value = int(whole or 0) + Fraction(int(fixed or 0), 10 ** len(fixed))
    value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def math_equal(gold: str, pred: str) -> bool:
    """True when `pred` is mathematically the same answer as `gold`."""
    gold, pred = normalise(str(gold)), normalise(pred)
    return _same(commas(gold), commas(pred)) or decimal_comma(gold, pred)


def _same(gold: str, pred: str) -> bool:
    g, p = _parse(gold), _parse(pred)
    if not g or not p:
        return gold.strip() == pred.strip()
    if "\\{" in pred and _is(g, Interval) and _is(p, FiniteSet):
        return False  # math-verify reads the gold (1, 3) as a possible pair, and so takes {1, 3}
    units = _unit(gold), _unit(pred)
    if None not in units and units[0][0] != units[1][0]:
        return False  # math-verify drops units: 5 m would be 5 cm
    with _exact_numbers():
        return bool(verify(g, p))


def _unit(answer: str) -> tuple[str, int] | None:
    """The unit after the answer's last number in one spelling (cm for centimeters), and where it starts."""
    m = _UNIT.search(answer)
    if not m:
        return None
    word = (m.group(1) or m.group(2)).lower().split()[-1]  # square centimeters: cm
    word = word[:-1] if len(word) > 2 and word.endswith("s") else word
    return _SAME_UNIT.get(word, word), m.start()


def _is(parsed: list, kind: type) -> bool:
    return bool(parsed) and isinstance(parsed[0], kind)


@contextmanager
def _exact_numbers():
    """Swap math-verify's two numeric comparisons for exact ones while we verify; others' calls stay as they were."""
    numeric, symbolic = grader.sympy_numeric_eq, grader.sympy_symbolic_eq

    def numeric_eq(a, b, *precision):
        same = _same_number(a, b)
        if same is None and isinstance(a, Expr) and isinstance(b, Expr):
            # symbols, or a value lost in cancellation: math-verify's float check would chop tiny differences
            # (x/2004! = x/2006!), while simplification, which it tries next, decides exactly
            return False
        return numeric(a, b, *precision) if same is None else same

    def symbolic_eq(a, b):
        same = _same_number(a, b)
        return symbolic(a, b) if same is None else same

    grader.sympy_numeric_eq, grader.sympy_symbolic_eq = numeric_eq, symbolic_eq
    try:
        yield
    finally:
        grader.sympy_numeric_eq, grader.sympy_symbolic_eq = numeric, symbolic


def _has_symbols(*es) -> bool:
    return any(isinstance(e, Expr) and e.free_symbols for e in es)


def _same_number(gold, pred) -> bool | None:
    """Exact equality of two numbers; None when either is not a number (symbols, matrices, sets): math-verify's."""
    if not (isinstance(gold, Expr) and isinstance(pred, Expr)) or _has_symbols(gold, pred):
        return None
    gp, pp = grader.get_pct_val(gold), grader.get_pct_val(pred)  # X for X% (X * UnevaluatedExpr(1/100))
    if gp is not None and pp is not None:
        return _equal(gp, pp)
    if gp is not None:
        return _equal(gp / 100, pred) or _equal(gp, pred)
    if pp is not None:
        whole = isinstance(pp, Integer) and isinstance(gold, Integer)
        return _equal(gold, pp / 100) or (whole and _equal(gold, pp))
    return _equal(gold, pred)


def _exact(e: Expr) -> Expr:
    """e with each float read as the decimal it was written as (0.1 is 1/10, not the nearest binary fraction)."""
    e = e.replace(lambda x: isinstance(x, UnevaluatedExpr), lambda u: u.args[0])
    return e.replace(lambda x: x.is_Float, lambda f: Rational(str(f)))


def _equal(a: Expr, b: Expr) -> bool | None:
    a, b = _exact(a), _exact(b)
    if a == b:
        return True
    size = [_log10(a), _log10(b)]
    if None in size:
        return None  # not a number sympy can pin down: left to simplification
    top = max(size)
    if top == -math.inf:
        return True  # both evaluate to exactly 0
    if max(abs(s) for s in size if s != -math.inf) > _MAX_DIGITS:
        return False  # too long to tell apart in time
    ra, rb = a.doit(), b.doit()
    if ra.is_Rational and rb.is_Rational:
        return ra == rb
    n = _DIGITS + 10 + max(0, math.ceil(top))
    diff = abs(N(ra, n) - N(rb, n))
    # below 1 the tolerance is relative (tiny values differ in their digits), above 1 absolute (a big number off by
    # one is off)
    return bool(diff <= Rational(10) ** (min(math.floor(top), 0) - _DIGITS))


def _log10(e: Expr) -> float | None:
    """log10 |e|, -inf for 0; None when e does not evaluate to a finite number."""
    try:
        m = abs(N(e, 15))
    except Exception:
        return None
    if m == 0:
        return -math.inf
    if not isinstance(m, Float) or m._prec < 10:
        return None  # sympy marks a value it could not pin down (0.e-122, say) with a precision of 1 bit
    return float(mpmath.log10(mpmath.mpf(m._mpf_)))
