"""Readability: the checks that made R1's rejection-sampled traces usable as SFT data.

DeepSeek-R1 (DeepSeek-AI 2025, §2.3.2 and §2.3.3) keeps only outputs in a readable pattern, the reasoning inside
<think>...</think> followed by a summary, and filters out chains of thought with mixed languages (filters/language.py),
long paragraphs and code blocks. The degeneration checks are Gopher's repetition rules (Rae et al. 2021, "Scaling
Language Models", Table A1, as in datatrove's GopherRepetitionFilter) plus a sentence-loop count for the loops
sampling falls into. `readability` returns the first failing check, in this order:

    truncated, unclosed_think, no_summary, summary_without_answer, too_short, too_long,
    long_paragraph, code_in_reasoning, repeated_paragraphs, sentence_loop, ngram_repetition

A candidate with `think=False` (a model that does not write <think>) skips the think checks (unclosed_think,
no_summary, summary_without_answer, too_short) and is judged as one text. Every threshold below is a recipe setting.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress
from operator import ne

from filters.answer import last_boxed, split_think
from filters.base import Candidate, Verdict, accept, reject


@dataclass
class ReadabilityConfig:
    """A recipe's `readability:` section."""

    # R1's readable pattern is |special_token|<reasoning_process>|special_token|<summary> (R1 §2.3.2)
    require_think: bool = True
    # the summary states the answer: \boxed{}, <answer>, "the answer is ...", or "... = X" (math); code (code tasks)
    require_answer: bool = True
    # "<think>\n\n</think>" is R1 skipping its reasoning (DeepSeek's usage notes force "<think>\n" against it);
    # 20 characters is less than one sentence of reasoning
    min_reasoning_chars: int = 20
    # R1's longest generations were 32,768 tokens (R1 §3, evaluation setup); at ~4 characters a token
    max_chars: int = 131_072
    # R1 drops "long paragraphs" without a number. A paragraph is a line (generated text is not hard-wrapped).
    # 3,000 characters is ~500 words of unbroken text, almost twice the longest legitimate paragraph in
    # data/labelled/readability_cases.jsonl (1,640) and short of R1-Zero's walls of text, which run for pages
    max_paragraph_chars: int = 3000
    # R1 drops chains of thought with code blocks (§2.3.3); code tasks keep theirs
    allow_code_in_math_reasoning: bool = False
    # Gopher Table A1: duplicate paragraph fraction 0.30 and duplicate paragraph/line character fraction 0.20.
    # Gopher's duplicate *line* fraction is left out (R1 puts "\[" and "\]" on lines of their own), and short
    # paragraphs are not counted as repeats (see min_repeat_chars)
    max_dup_para_frac: float = 0.30
    max_dup_para_char_frac: float = 0.20
    max_dup_line_char_frac: float = 0.20
    # Gopher Table A1: fraction of characters in duplicate n-grams, 0.15 for 5-grams down to 0.10 for 10-grams.
    # Reasoning restates itself (checks, recomputations) more than web text: a legitimate trace that recomputes its
    # values reaches 0.10 for 10-grams in the labelled set, sampling loops 0.4 and more, so the bound is 0.30
    ngram_size: int = 10
    max_ngram_repetition: float = 0.30
    # a sentence of at least 30 characters said more than 5 times: R1's "Wait, let me check." interjections are
    # shorter, and a proof's refrain ("by the induction hypothesis") recurs a handful of times, not dozens
    max_sentence_repeats: int = 5
    # sentences and paragraphs shorter than this never count as repeats ("Wait.", "Hmm.", "\]" on its own line)
    min_repeat_chars: int = 30


_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_BLOCKS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_ANSWER_TAG = re.compile(r"<answer>\s*\S.*?</answer>", re.S)
_ANSWER_SAID = re.compile(r"\banswer\**\s*(?:is\b|:|=)\**\s*[^\s.]", re.I)
_ENDS_WITH = re.compile(r"(?:=|\bis|\bequals|\bequal to|\bgives)\s*(?:[^=]*[\d$\\][^=]*|(?:[^\s=]+\s*){1,4})$", re.I)
_VALUE = re.compile(r"\d|\$|\\\(|\\\[")
_CODE = re.compile(r"```|^\s*(?:def|class)\s+\w", re.M)


def readability(c: Candidate, cfg: ReadabilityConfig | None = None) -> Verdict:
    cfg = cfg or ReadabilityConfig()
    if c.finish_reason == "length":
        return reject("truncated")
    think = c.think and cfg.require_think
    if think:
        if c.text.count("</think>") != 1 or c.text.count("<think>") > 1:
            return reject("unclosed_think")
        reasoning, summary = split_think(c.text)
        if not summary.strip():
            return reject("no_summary")
        if cfg.require_answer and not states_answer(summary, c.task):
            return reject("summary_without_answer")
        if len(reasoning.strip()) < cfg.min_reasoning_chars:
            return reject("too_short", reasoning_chars=len(reasoning.strip()))
        parts = [reasoning, summary]
    else:
        reasoning, parts = c.text, [c.text]
    if len(c.text) > cfg.max_chars:
        return reject("too_long", chars=len(c.text))
    scores = {"chars": len(c.text)}
    prose = _FENCE.sub("\n", c.text) if "```" in c.text else c.text
    scores["max_paragraph_chars"] = max(map(len, prose.splitlines()), default=0)
    if scores["max_paragraph_chars"] > cfg.max_paragraph_chars:
        return reject("long_paragraph", **scores)
    if c.task == "math" and not cfg.allow_code_in_math_reasoning and "```" in reasoning:
        return reject("code_in_reasoning", **scores)
    return _degeneration(parts, cfg, scores)


def states_answer(summary: str, task: str) -> bool:
    """Whether a summary states an answer: a marked one for math, code for code; any text otherwise."""
    if task == "code":
        return bool(_CODE.search(summary))
    if task != "math":
        return bool(summary.strip())
    if last_boxed(summary) or _ANSWER_TAG.search(summary) or _ANSWER_SAID.search(summary):
        return True
    lines = [ln for ln in summary.strip().splitlines() if ln.strip()]
    if not lines:
        return False
    # a last line with a value in it ("The train covers 150 km.") or a sentence in it that ends in "is X" / "= X"
    last = lines[-1]
    return bool(_VALUE.search(last)) or any(_ENDS_WITH.search(s[-300:].rstrip(" .!*")) for s in _SENTENCES.split(last))


def _degeneration(parts: list[str], cfg: ReadabilityConfig, scores: dict) -> Verdict:
    """Gopher's duplicate paragraph/line and n-gram fractions and the sentence-loop count; the worst part counts."""
    para = para_chars = line_chars = ngram = 0.0
    loops = 0
    for text in parts:
        if not text.strip():
            continue
        p, pc = dup_fraction(_BLOCKS.split(text.strip()), len(text), cfg.min_repeat_chars)
        para, para_chars = max(para, p), max(para_chars, pc)
        line_chars = max(line_chars, dup_fraction(text.splitlines(), len(text), 0)[1])
        loops = max(loops, max_sentence_repeats(text, cfg.min_repeat_chars))
        ngram = max(ngram, dup_ngram_fraction(text.split(), cfg.ngram_size))
    scores |= {
        "dup_para_frac": round(para, 4),
        "dup_para_char_frac": round(max(para_chars, line_chars), 4),
        "max_sentence_repeats": loops,
        "ngram_repetition": round(ngram, 4),
    }
    if para > cfg.max_dup_para_frac or para_chars > cfg.max_dup_para_char_frac:
        return reject("repeated_paragraphs", **scores)
    if line_chars > cfg.max_dup_line_char_frac:
        return reject("repeated_paragraphs", **scores)
    if loops > cfg.max_sentence_repeats:
        return reject("sentence_loop", **scores)
    if ngram > cfg.max_ngram_repetition:
        return reject("ngram_repetition", **scores)
    return accept(**scores)


def dup_fraction(segments: list[str], total_chars: int, min_chars: int) -> tuple[float, float]:
    """Gopher's (fraction of segments that repeat an earlier one, fraction of characters in repeats).

    Blank segments are ignored; segments shorter than `min_chars` count as segments but never as repeats.
    """
    counts = Counter(s.strip() for s in segments)
    counts.pop("", None)
    n = sum(counts.values())
    if not n or not total_chars:
        return 0.0, 0.0
    dups = [(s, k - 1) for s, k in counts.items() if k > 1]
    long = [(s, k) for s, k in dups if len(s) >= min_chars]
    return sum(k for _, k in long) / n, sum(len(s) * k for s, k in dups) / total_chars


def dup_ngram_fraction(words: list[str], n: int) -> float:
    """Fraction of characters (words and their spaces) covered by word n-grams that occurred earlier (Gopher)."""
    m = len(words) - n + 1
    if m <= 1:
        return 0.0
    grams = list(zip(*(words[i:] for i in range(n))))  # noqa: B905 (shorter slices end it)
    first = dict(zip(reversed(grams), range(m - 1, -1, -1), strict=True))  # each n-gram -> where it first occurs
    repeats = compress(range(m), map(ne, range(m), map(first.__getitem__, grams)))
    sizes = list(map(len, words))
    covered, end = 0, 0
    for i in repeats:  # the union of [i, i + n), so overlapping n-grams count their words once
        start = max(i, end)
        covered += sum(sizes[start : i + n]) + i + n - start
        end = i + n
    return covered / (sum(sizes) + len(words))


def max_sentence_repeats(text: str, min_chars: int) -> int:
    """How often the most repeated sentence of at least `min_chars` characters (case ignored) occurs."""
    counts = Counter(map(str.lower, map(str.strip, _long_sentences(min_chars)(text))))
    return max(counts.values(), default=0)


@lru_cache(maxsize=4)
def _long_sentences(min_chars: int):
    return re.compile(rf"[^.!?。！？\n]{{{min_chars},}}").findall
