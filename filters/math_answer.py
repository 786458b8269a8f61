"""Math answers checked with math-verify: equivalent forms (fractions, radicals, sets, intervals) are equal.

math-verify's own timeout uses signals and so works only on a main thread; the caller runs this in a worker
process whose main thread it is, and kills the worker if a check runs past the hard limit.
"""

from __future__ import annotations

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]


def _parse(answer: str):
    text = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    return parse(text, extraction_config=_CONFIG) or parse(answer, extraction_config=_CONFIG)


def math_equal(gold: str, pred: str) -> bool:
    """True when `pred` is mathematically the same answer as `gold`."""
    g, p = _parse(str(gold)), _parse(pred)
    if not g or not p:
        return str(gold).strip() == pred.strip()
    return bool(verify(g, p))
