"""Final-answer extraction: boxed, tags, "the answer is", a closing equation; only after </think> when thinking."""

from __future__ import annotations

import pytest

from filters.answer import extract_answer, last_boxed, split_think


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
