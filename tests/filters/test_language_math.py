"""Language mixing on math text: LaTeX-dense English stays English, foreign fragments inside it are still caught.

With its LaTeX skipped, math text leaves a few words repeated line after line, and MATH's figures leave Asymptote;
langdetect took both for other languages (Italian, Welsh) and the filter dropped English solutions as
language_mixing. Each text here is made up in the shape of one it dropped.
"""

from __future__ import annotations

from filters.base import Candidate
from filters.language import LanguageConfig, count_words, language

DIVISORS = (
    "We look for the divisors of 84 among the numbers from 1 to 20, checking each one:\n"
    + "\n".join(rf"- \(84 \div {n} = {84 / n:.2f}\) (so {n} is not a divisor)" for n in (5, 8, 9, 10, 11, 13, 15, 16))
    + "\n\nThe divisors up to 20 are \\(1, 2, 3, 4, 6, 7, 12, 14\\), so the probability is "
    "\\(\\frac{8}{20} = \\boxed{\\frac{2}{5}}\\)."
)
SETTING = (
    "".join(f"Setting $t = {k},$ we get\n\\[h({k}) = {k * k + 1}.\\]" for k in range(1, 9))
    + "Let\n\\begin{align*}\ns &= h(1) + h(2), \\\\\nu &= h(3).\n\\end{align*}Hence $s + u = \\boxed{16}.$"
)
FIGURE_PROSE = (
    "The trapezoid is split by its two diagonals into four triangles.\n\n{figure}\n\n"
    "The bases are 10 and 5 and the height is 4, so the area is $\\frac{{(10 + 5) \\cdot 4}}{{2}} = \\boxed{{30}}$."
)
FIGURE = (
    "[asy]\ndraw((0,0)--(10,0)--(7,4)--(2,4)--cycle,black+linewidth(1));\n"
    "draw((0,0)--(7,4),black+linewidth(1)+dashed);\ndraw((10,0)--(2,4),black+linewidth(1));\n"
    "draw((2,0)--(2,4),black+linewidth(1));\ndraw((7,0)--(7,4),black+linewidth(1));\n"
    'draw((0,0)--(10,0),black+linewidth(1));\nlabel("$A$",(0,0),SW);\nlabel("$B$",(10,0),SE);\n'
    'label("$C$",(7,4),NE);\nlabel("$D$",(2,4),NW);\n[/asy]'
)
MIXED_BASE = (
    "We need the sum $S = \\sum_{{k=1}}^{{n}} k^2$ for $n = 10$. The formula gives "
    "\\[S = \\frac{{n(n+1)(2n+1)}}{{6}} = \\frac{{10 \\cdot 11 \\cdot 21}}{{6}}.\\] {fragment} "
    "Now we simplify the fraction: $\\frac{{2310}}{{6}} = 385$. We check it against the first few terms, "
    "$1 + 4 + 9 + 16 = 30$, which the formula also gives for $n = 4$. So the answer is $\\boxed{{385}}$."
)


def verdict(text: str):
    return language(Candidate(text, think=False))


def test_latex_dense_english_is_english():
    for text in (DIVISORS, SETTING, FIGURE_PROSE.format(figure=FIGURE)):
        v = verdict(text)
        assert v.accepted and v.scores["language_consistency"] == 1.0, text[:60]


def test_repeated_lines_are_not_judged_on_their_own():
    # 8 lines of `so is not divisor`: 32 words, 4 distinct, too few to judge (langdetect said Italian)
    words, foreign = count_words(DIVISORS, "en", LanguageConfig())
    assert words > LanguageConfig().min_words and foreign == 0


def test_asymptote_figures_are_code():
    with_figure = count_words(FIGURE_PROSE.format(figure=FIGURE), "en", LanguageConfig())
    assert with_figure == count_words(FIGURE_PROSE.format(figure=""), "en", LanguageConfig())
    unclosed = count_words('[asy]\ndraw(unitcircle);\nlabel("$O$",(0,0),S);', "en", LanguageConfig())
    assert unclosed == (0, 0)  # a figure cut off by max_tokens is still code


def test_chinese_or_korean_inside_latex_dense_english_is_mixing():
    fragments = [
        "因此我们先计算分子，再约分得到结果。",  # "so we compute the numerator first, then reduce"
        "그러므로 분자를 먼저 계산하고 약분합니다 그러면 결과를 얻습니다",  # the same, in Korean
        "因此 numerator 是 2310，然后我们约分。",
    ]
    for fragment in fragments:
        v = verdict(MIXED_BASE.format(fragment=fragment))
        assert not v.accepted and v.reason == "language_mixing", fragment
    assert verdict(MIXED_BASE.format(fragment="")).accepted


def test_a_foreign_paragraph_in_the_same_script_is_still_caught():
    spanish = (
        "\n\nAhora tenemos que simplificar la fracción y comprobar que el resultado es un número entero, "
        "porque la suma de los cuadrados siempre es un número entero positivo cuando sumamos términos.\n\n"
    )
    v = verdict(MIXED_BASE.format(fragment=spanish))
    assert not v.accepted and v.reason == "language_mixing"
