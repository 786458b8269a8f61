"""Final answers: extraction (boxed, tags, "the answer is", a closing equation; only after </think> when thinking),
and the math comparison reading them as people write them, with near misses rejected.
"""

from __future__ import annotations

import pytest

from filters.answer import extract_answer, last_boxed, split_think
from filters.base import Candidate
from filters.math_answer import math_equal
from filters.verify import verify


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{3}", "3"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces are balanced
        (r"\boxed{{a}+{b^{2}}} done", "{a}+{b^{2}}"),
        (r"first \boxed{1}, then \boxed{\frac{3}{4}}", r"\frac{3}{4}"),  # the last one wins
        (r"The answer is 5, i.e. \boxed{6}", "6"),  # boxed beats a sentence
        ("<answer>42</answer>", "42"),
        ("<answer> 1 </answer> no, <answer>\n7\n</answer>", "7"),
        ("The answer is 12.", "12"),
        ("So the final answer is -3!", "-3"),
        ("The answer is: 5", "5"),
        ("Answer: 13", "13"),
        ("work\nANSWER: x + 1", "x + 1"),
        ("3 + 4 = 7.", "7"),
        ("We add them.\n2 + 2 = 3 + 1 = 4", "4"),
        ("eight plus three equals 11", "11"),
        ("The answer is **5**.", "5"),
        ("**Answer:** 42", "42"),
        ("**Answer**: 42", "42"),
        ("The answer is $9$.", "9"),
        (r"Final Answer: $\frac{1}{2}$", r"\frac{1}{2}"),
        (r"The answer is \(x+1\)", "x+1"),
        ("just 17", "just 17"),  # nothing better: the last line as it is
        (r"Thus $S = \sum_{k=0}^{n} k$.", r"\sum_{k=0}^{n} k"),  # the subscript's = is not the last relation
        (r"So $S = \sum_{k=0}^{3} k = 6$.", "6"),
        (r"The total is $\sum_{k=1}^{n} k^{2}$", r"\sum_{k=1}^{n} k^{2}"),
        ("She makes 9 * 2 = $<<9*2=18>>18 a day.\nA: 18", "18"),  # GSM8K's model solutions
        ("So 3 + 4 = <<3+4=7>>7 eggs.\n#### 7", "7"),  # GSM8K's own answers
        ("#### 1,080", "1,080"),
        ("A: $18", "18"),
        ("The answer is 5? No, 6.\n#### 6", "6"),  # the marked last line is the final word
        ("A: 5\nthen 2 + 2 = 4", "4"),  # a marker on an earlier line is not the last statement
        ("\\boxed{5}\nA: 6", "5"),  # boxed still wins
    ],
)
def test_extract_without_think(text, expected):
    assert extract_answer(text, think=False) == expected


def test_think_uses_only_the_summary():
    text = "<think>maybe the answer is 99, or \\boxed{98}; 1 + 1 = 97</think>\nThe answer is 5."
    assert extract_answer(text, think=True) == "5"
    assert extract_answer(text, think=False) == "98"  # the whole text: the boxed guess in the block wins


def test_think_never_reads_a_guess_inside_the_block():
    text = "<think>the answer is 99</think>\n"
    assert extract_answer(text, think=True) is None
    assert extract_answer("<think>\\boxed{99}</think>Sure.", think=True) == "Sure"  # the summary's last line
    assert extract_answer("I think it is 99.\n</think>\nThe answer is 4", think=True) == "4"  # <think> in the prompt


def test_unclosed_think_gives_none():
    assert extract_answer("<think>the answer is 99", think=True) is None
    assert extract_answer("the answer is 99", think=True) is None


@pytest.mark.parametrize("text", ["", "   \n\t ", "****", "$$"])
def test_empty_gives_none(text):
    assert extract_answer(text, think=False) is None


def test_split_think_and_last_boxed():
    assert split_think("<think>a</think>b") == ("a", "b")
    assert split_think("a</think>b") == ("a", "b")
    assert split_think("no block") == (None, "no block")
    assert last_boxed(r"\fbox{2} and \boxed{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed{unbalanced") is None
    assert last_boxed("nothing") is None


def _accepts(gold: str, right: list[str], wrong: list[str]) -> None:
    for pred in right:
        assert math_equal(gold, pred), f"{pred!r} should equal {gold!r}"
    for pred in wrong:
        assert not math_equal(gold, pred), f"{pred!r} should not equal {gold!r}"


def test_thousands_separators():
    _accepts("12000", ["12,000", r"12\,000", "12 000", "12{,}000", r"12,\!000", "12~000", r"\boxed{12 000}", "12000."],
             ["12,001", "12 001", r"12\,001", "1,200", "12", "120 000", "12 0000"])  # fmt: skip
    _accepts("1000", ["1{,}000", "1,000", r"1\,000"], ["1,001", "100", "0"])
    _accepts("1234567.5", ["1,234,567.5", "1 234 567.5"], ["1,234,567", "1.2345675"])
    _accepts("12 000", ["12000", "12,000"], ["0", "12"])  # the gold written with a space
    _accepts("0", [], ["12 000", r"12\,000", "12 0000"])  # math-verify alone reads 12 000 as 12*000 = 0


def test_commas_in_lists_are_not_thousands():
    _accepts("1, 2", ["1,2", r"\{1, 2\}"], ["12", "1.2"])
    _accepts("(1, 3)", ["(1,3)"], [r"\{1, 3\}", "13"])
    _accepts("(12, 102)", ["(12,102)"], ["12102"])  # a comma run inside brackets is a pair
    _accepts("12102", [], ["(12,102)", "12, 102"])
    _accepts(r"\{1000, 5\}", [r"\{1,000, 5\}"], [r"\{1, 0, 5\}"])  # 000 is never a list item
    _accepts(r"\{0, 1\}", [], [r"\{1,000\}"])
    # a run in the thousands pattern on its own is a number; a list has a space after its commas
    _accepts("12,500", ["12,500", "12500"], ["12, 500", "{12, 500}", r"\{12, 500\}"])
    _accepts("12500", ["12,500", "12 500"], ["12, 500", "(12,500)"])  # the answer's commas, against a number


def test_a_gold_with_thousands_separators_takes_the_plain_number():
    # MATH's golds 3,250 and 50,625 turned away the answers 3250 and 50625 (Qwen2.5-Math-7B-Instruct's, graded right)
    right = ["3250", "3,250", "3{,}250", r"3\,250", r"\boxed{3250}", r"\$3,250"]
    wrong = ["3,25", "325", "3.250", "32,50", "32500", "3, 250", r"\{3, 250\}", "(3,250)", "3251", "3,2500"]
    _accepts("3,250", right, wrong)
    _accepts("50,625", ["50625", "50{,}625"], ["50,62", "5,0625", "50.625", "506,25", "50, 625"])
    _accepts("3{,}250", ["3250", "3,250"], ["3,25", "325", "3.250"])
    _accepts("1,234,567", ["1234567", "1,234,567"], ["1,234", "1234", "1,234, 567", "1234,567"])
    _accepts("3250", ["3,250", "3{,}250"], ["3,25", "32,50", "3.250", "(3,250)", "3, 250"])  # the other way round
    _accepts("x = 3,250", ["x = 3250", "3250"], ["x = 3.25"])


def test_brackets_keep_a_comma_run_a_tuple():
    _accepts("(1,234)", ["(1, 234)", "(1,234)"], ["1234", "(1234)", "1,234", r"\{1, 234\}"])
    _accepts(r"\{1,234\}", [r"\{1, 234\}", r"\{234, 1\}"], ["1234", "1,234", r"\{1234\}"])
    _accepts("[-36,104]", ["[-36, 104]"], ["-36104", "(-36, 104)"])
    _accepts("1, 2,500", ["1, 2, 500"], ["1, 2500"])  # beside another comma: the list 1, 2, 500


def test_the_known_risk_a_list_without_spaces_in_the_pattern():
    # MATH's gold 70,110 is the angles 70 and 110, read as the number 70110 (filters/math_written.py, commas)
    _accepts("70,110", ["70,110"], ["70, 110", "70", "110"])  # the right 70, 110 turned away: a lost sample
    assert math_equal("70,110", "70110")  # a wrong answer let in, one no model gives for an angle in [0, 360]


def test_numerals_side_by_side_are_not_read():
    # math-verify reads `1 2` as 3 and `2\ 3` as 5
    _accepts("3", [], ["1 2", r"1\quad 2"])
    _accepts("5", [], [r"2\ 3"])
    _accepts(r"\frac{1}{2}", [r"\frac 1 2", r"\frac12"], [])


def test_decimal_comma_only_in_the_answer_against_a_decimal_gold():
    wrong = ["3,6", "35", "x = 3,5", "3, 5", "3 ,5", "$3, 5$", "1,2,3,5"]  # 3, 5 is a list, never 3.5
    _accepts("3.5", ["3,5", "$3,5$", r"\boxed{3,5}", "3,50", "3{,}5"], wrong)
    _accepts("0.25", ["0,25"], ["0,26", "25"])
    _accepts("0.111", ["0,111"], ["111"])  # a leading group of 0 is no thousands number
    _accepts("-3.5", ["-3,5"], ["3,5"])
    _accepts("1.234", [], ["1,234"])  # three digits after the comma: a thousands number
    _accepts(r"\frac{7}{2}", [], ["3,5"])  # a gold not written as a decimal does not say a decimal was asked for
    _accepts("3", [], ["3,0"])  # 3,0 may be the roots 3 and 0
    _accepts("3,5", [r"\{3, 5\}"], ["3.5"])  # a gold 3,5 is a list: the roots 3 and 5


def test_upright_e_and_i():
    _accepts("2e", [r"2\mathrm{e}", r"2\,\mathrm{e}"], ["2", r"2\mathrm{i}", r"\mathrm{e}"])
    _accepts(r"e^{2}", [r"\mathrm{e}^2", r"\mathrm e^{2}"], ["2", r"\mathrm{e}^3"])
    _accepts(r"1 - \frac{1}{e}", [r"1 - \frac{1}{\mathrm{e}}", r"\frac{\mathrm{e} - 1}{\mathrm{e}}"],
             [r"1 + \frac{1}{\mathrm{e}}", "1"])  # fmt: skip
    _accepts("1", [], [r"1 - \frac{1}{\mathrm{e}}", r"1 - \frac{1}{\text{e}}"])  # math-verify reads both as 1
    _accepts("2+3i", [r"2+3\mathrm{i}", r"3\mathrm{i}+2"], [r"2-3\mathrm{i}", "2", "5"])


def test_mixed_numbers():
    _accepts(r"\frac{40}{9}", [r"4\frac{4}{9}", r"4 \frac{4}{9}", r"4\tfrac49", r"4\frac{4}{9} \text{ cups}"],
             [r"\frac{16}{9}", r"4\frac{4}{9}x", "4"])  # fmt: skip
    _accepts(r"\frac{16}{9}", [], [r"4\frac{4}{9}"])  # a mixed number, not 4 times 4/9
    _accepts(r"-\frac{40}{9}", [r"-4\frac{4}{9}"], [r"4\frac{4}{9}"])
    _accepts(r"-\frac{32}{9}", [], [r"-4\frac{4}{9}"])  # the sign covers the whole number: not -4 + 4/9
    # beside a factor it may be a product or a mixed number; either reading could let a wrong answer in
    _accepts("x", [], [r"2\frac{1}{2}x"])
    _accepts(r"\frac{5}{2}x", [], [r"2\frac{1}{2}x"])
    _accepts("3", [], [r"2\frac{3}{2}"])  # no mixed number has a fraction over 1
    _accepts("1", [], [r"1\frac{1}{2}\%"])  # math-verify fails on the LaTeX and reads the leading 1


def test_trailing_punctuation_inside_the_math():
    right = [r"$\frac{1}{3}.$", r"\frac{1}{3}.", r"\frac{1}{3},", r"\frac{1}{3}\,.", r"$\frac{1}{3}$."]
    _accepts(r"\frac{1}{3}", right, [r"$\frac{1}{2}.$", r"\frac{1}{3}!", "3."])
    _accepts("120", ["5!", "5!."], ["5"])  # ! is a factorial, never punctuation
    _accepts(r"\{1, 2\}", [r"\{1, 2\}."], [r"\{1, 2, 3\}."])


def test_the_answer_after_a_sum_is_not_its_subscript():
    text = r"<think>add them</think>Thus $S = \sum_{k=0}^{n} k$."
    assert not verify(Candidate(text, "math", {"answer": "0"})).accepted  # k=0's 0 was taken as the answer
    assert verify(Candidate(text, "math", {"answer": r"\sum_{k=0}^{n} k"})).accepted
    ok = r"<think>add them</think>So $S = \sum_{k=1}^{3} k = 6$."
    assert verify(Candidate(ok, "math", {"answer": "6"})).accepted
    assert not verify(Candidate(ok, "math", {"answer": "1"})).accepted


def test_gsm8k_style_answers_are_verified():
    def ok(text: str, gold: str) -> bool:
        return verify(Candidate(text, "math", {"answer": gold}, think=False)).accepted

    # read whole, `A: 18` was a/18 to math-verify, never the gold 18
    assert ok("2 * 9 = <<2*9=18>>18\nA: 18", "18") and ok("so 1080 in all\n#### 1,080", "1080")
    assert not ok("2 * 9 = <<2*9=18>>18\nA: 18", "19") and not ok("#### 18", "1,800")
