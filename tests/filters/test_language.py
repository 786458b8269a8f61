"""Language mixing: what counts as a word, scripts, langdetect for shared scripts, the verdict, the labelled set.

The labelled set (data/labelled/language_cases.jsonl, drop = positive) must reach precision and recall of at least
0.95 and get every hard case right; a script-only count (no langdetect) must miss the same-script mixing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from filters import language as lang_mod
from filters.base import Candidate
from filters.language import LanguageConfig, count_words, language, language_consistency, normalize

CASES = Path(__file__).resolve().parents[2] / "data" / "labelled" / "language_cases.jsonl"
EN = (
    "We need the sum of the interior angles of a hexagon. The formula for a polygon with many sides is well known.\n\n"
    "Splitting the hexagon into triangles from one vertex gives four triangles, and each one contributes the same "
    "amount, so the total follows directly.\n\nLet me double-check with the exterior angles, which always add up to "
    "a full turn. Everything is consistent."
)
FR = (
    "Il faut trouver la somme des angles intérieurs d'un hexagone. La formule pour un polygone est bien connue.\n\n"
    "En découpant l'hexagone en triangles depuis un sommet, on obtient quatre triangles, et chacun apporte la même "
    "contribution, donc le total s'en déduit directement.\n\nVérifions avec les angles extérieurs, dont la somme fait "
    "toujours un tour complet. Tout est cohérent."
)
ZH = (
    "我们需要求六边形的内角和。从一个顶点出发画对角线，可以把六边形分成四个三角形，"
    "每个三角形的内角和都相同，所以总和可以直接算出来。"
)


def test_one_language_scores_one_and_another_scores_zero():
    assert language_consistency(EN, "en") == 1.0
    assert language_consistency(ZH, "zh") == 1.0
    assert language_consistency(FR, "fr") == 1.0
    assert language_consistency(ZH, "en") == 0.0
    assert language_consistency(EN, "zh") == 0.0
    assert language_consistency(FR, "en") < 0.1 and language_consistency(EN, "fr") < 0.1


def test_latex_code_urls_numbers_and_identifiers_are_not_words():
    noise = (
        "$\\frac{a}{b}$ \\[x^2 + y^2\\] \\(\\sin x\\) \\begin{align} a &= b \\end{align} `np.linalg.solve(A, b)` "
        "https://example.com/path 3.14 42 x1 snake_case camelCase np.array x y\n```python\nprint('bonjour')\n```"
    )
    assert count_words(noise, "en", LanguageConfig())[0] == 0
    assert language_consistency(noise, "zh") == 1.0  # no words at all: nothing foreign
    assert count_words("The value of $x$ is 3, so x1 = 4.", "en", LanguageConfig()) == (5, 0)


def test_chinese_target_keeps_english_terms_but_not_english_sentences():
    terms = "根据 Chinese Remainder Theorem 和 GCD 的性质，设 a 和 b 为整数，用 sin 和 cos 计算。"
    assert language_consistency(terms, "zh") == 1.0
    sentence = "根据这个性质。 So we need to check whether this works for every pair of integers here. 然后继续。"
    assert language_consistency(sentence, "zh") < 0.7


def test_a_single_foreign_quotation_stays_above_the_threshold():
    quoted = EN + "\n\nAs Fermat wrote, « Je n'ai pas assez de place dans cette marge », the proof is elsewhere."
    assert language(Candidate(quoted)).accepted


def test_same_script_paragraph_mixing_is_caught_by_langdetect():
    mixed = EN.split("\n\n")[0] + "\n\n" + FR.split("\n\n")[1] + "\n\n" + EN.split("\n\n")[2]
    assert language_consistency(mixed, "en") < 0.8
    assert language_consistency(mixed, "en", LanguageConfig(detector="script")) == 1.0  # scripts alone cannot


def test_verdict_reason_score_threshold_and_min_words():
    v = language(Candidate(ZH), target="en")
    assert (v.accepted, v.reason, v.scores) == (False, "language_mixing", {"language_consistency": 0.0})
    assert language(Candidate(ZH), LanguageConfig(target="zh")).scores == {"language_consistency": 1.0}
    assert language(Candidate(ZH), LanguageConfig(target="en"), target="zh").accepted  # the record's language wins
    assert language(Candidate("C'est évident. La réponse est quatre."), target="en").accepted  # too few words
    half = EN + "\n\n" + FR
    assert language(Candidate(half), LanguageConfig(threshold=0.3)).accepted
    assert not language(Candidate(half), LanguageConfig(threshold=0.95)).accepted


def test_language_codes_are_normalized_and_unknown_ones_rejected():
    assert [normalize(x) for x in ("zh-CN", "zh_tw", "EN", "pt-BR", "nb")] == ["zh", "zh", "en", "pt", "no"]
    with pytest.raises(ValueError, match="klingon"):
        language_consistency(EN, "klingon")


def test_scores_are_deterministic():
    mixed = EN + "\n\n" + FR.split("\n\n")[1]
    first = language_consistency(mixed, "en")
    lang_mod._probabilities.cache_clear()
    assert language_consistency(mixed, "en") == first


def test_the_original_langdetect_gives_the_same_scores():
    pytest.importorskip("langdetect")
    cfg_py = LanguageConfig(detector="langdetect")
    for text in (EN, FR, EN + "\n\n" + FR):
        for target in ("en", "fr"):
            assert language_consistency(text, target, cfg_py) == language_consistency(text, target)


def test_a_missing_detector_says_what_to_install(monkeypatch):
    lang_mod._detector.cache_clear()
    monkeypatch.setitem(sys.modules, "langdetect_rs", None)
    try:
        with pytest.raises(ImportError, match="pip install langdetect-rs"):
            language_consistency(EN + "\n\n" + FR, "en", LanguageConfig(seed=12345))
    finally:
        lang_mod._detector.cache_clear()
    with pytest.raises(ValueError, match="detector"):
        language_consistency(EN, "en", LanguageConfig(detector="fasttext", seed=54321))


def labelled(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def evaluate(cfg: LanguageConfig, path: Path = CASES) -> tuple[int, int, int, list]:
    tp = fp = fn = 0
    wrong_hard = []
    for c in labelled(path):
        v = language(Candidate(c["text"]), cfg, c["target"])
        drop, want = not v.accepted, c["label"] == "drop"
        tp, fp, fn = tp + (drop and want), fp + (drop and not want), fn + (want and not drop)
        if c["hard"] and drop != want:
            wrong_hard.append((c["note"], v.scores["language_consistency"]))
    return tp, fp, fn, wrong_hard


def test_labelled_set_is_large_and_varied():
    cases = labelled()
    assert len(cases) >= 100 and sum(c["hard"] for c in cases) >= 20
    assert {c["target"] for c in cases} >= {"en", "zh", "fr", "de", "es", "ru", "ja", "ko"}


def test_labelled_precision_recall_and_hard_cases():
    tp, fp, fn, wrong_hard = evaluate(LanguageConfig())
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.95, (tp, fp, fn)
    assert not wrong_hard


def test_held_out_precision_and_recall():
    # written apart from the filter and never tuned on: it misses one boundary case (11-14% foreign words)
    held_out = CASES.parent / "heldout" / "language_cases.jsonl"
    assert len(labelled(held_out)) >= 80
    tp, fp, fn, _ = evaluate(LanguageConfig(), held_out)
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.95, (tp, fp, fn)


def test_script_counts_alone_miss_same_script_mixing():
    tp, fp, fn, _ = evaluate(LanguageConfig(detector="script"))
    assert tp / (tp + fn) < 0.8  # the French, German, Spanish and Ukrainian cases need langdetect


def test_the_reasoning_is_measured_unless_the_scope_is_the_whole_completion():
    en_then_zh = f"<think>\n{EN}\n</think>\n\n{ZH}"  # English reasoning, a Chinese summary
    zh_then_en = f"<think>\n{ZH}\n</think>\n\n{EN}"
    assert language(Candidate(en_then_zh)).scores == {"language_consistency": 1.0}  # R1's measure: the reasoning
    assert language_consistency(en_then_zh, "en") == 1.0
    v = language(Candidate(zh_then_en))
    assert (v.accepted, v.reason, v.scores) == (False, "language_mixing", {"language_consistency": 0.0})
    whole = LanguageConfig(scope="completion")
    assert not language(Candidate(en_then_zh), whole).accepted
    assert 0 < language_consistency(en_then_zh, "en", whole) < 1
    assert language(Candidate(zh_then_en, think=False)).scores["language_consistency"] > 0  # no tags: all of it
    assert language_consistency(ZH, "en") == 0.0  # no think block: the whole text
    with pytest.raises(ValueError, match="scope 'summary' is not one of reasoning, completion"):
        LanguageConfig(scope="summary")
