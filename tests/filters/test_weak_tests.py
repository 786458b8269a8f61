"""The weak-test battery: each class of trivial program passes tests that are weak in its way, and no trivial
program passes sound tests of the same prompt (each check runs in the real sandbox)."""

from __future__ import annotations

import pytest

from filters.base import Candidate
from filters.code import verify_code
from filters.weak_tests import CLASSES, check, kind, programs


def he(prompt: str, *asserts: str, entry: str) -> dict:
    """A HumanEval-style reference: check(candidate) holding these asserts."""
    body = "".join(f"    {a}\n" for a in asserts)
    return {"test": f"def check(candidate):\n{body}", "entry_point": entry, "prefix": prompt}


DOUBLE = 'def double(x):\n    """Twice x."""\n'
EVENS = 'def evens(xs: list) -> list:\n    """The even numbers of xs."""\n'
IS_EVEN = 'def is_even(n: int) -> bool:\n    """Whether n is even."""\n'
DISTANCE = 'def distance(a: float, b: float) -> float:\n    """How far apart a and b are."""\n'
STRIP = 'def strip(s: str) -> str:\n    """s without the spaces around it."""\n'
ADD = 'def add(a, b):\n    """The sum.\n    >>> add(1, 2)\n    3\n    >>> add(2, 5)\n    7\n    """\n'
TITLE = "def title(name: str) -> str:\n    '''Capitalized.\n    title('ann') == 'Ann'\n    title('bob') ➞ 'Bob'\n'''\n"

# (class, prompt, weak tests, sound tests): the weak tests are passed by that class's program, the sound ones by none
CASES = [
    ("none", DOUBLE, ["assert candidate(3) is None"], ["assert candidate(3) == 6", "assert candidate(0) == 0"]),
    ("empty", EVENS, ["assert candidate([]) == []", "assert candidate([1, 3]) == []"],
     ["assert candidate([]) == []", "assert candidate([1, 2, 4]) == [2, 4]"]),
    ("constant", IS_EVEN, ["assert candidate(4)", "assert candidate(6)"],
     ["assert candidate(4)", "assert not candidate(3)"]),
    ("nan", DISTANCE, ["d = candidate(0, 3)", "assert d != 0 and d != 3 and not d < 0"],
     ["assert candidate(0, 3) == 3.0", "assert candidate(5, 1) == 4.0"]),
    ("echo", STRIP, ["assert candidate('abc') == 'abc'", "assert candidate('x') == 'x'"],
     ["assert candidate('abc') == 'abc'", "assert candidate(' a ') == 'a'"]),
    ("lookup", ADD, ["assert candidate(2, 5) == 7", "assert candidate(1, 2) == 3"],
     ["assert candidate(2, 5) == 7", "assert candidate(1, 2) == 3", "assert candidate(10, 20) == 30"]),
    ("order", TITLE, ["assert candidate('ANN') == 'Ann'", "assert candidate('BOB') == 'Bob'"],
     ["assert candidate('ANN') == 'Ann'", "assert candidate('BOB') == 'Bob'", "assert candidate('cy') == 'Cy'"]),
]  # fmt: skip


@pytest.mark.parametrize("cls, prompt, weak, sound", CASES, ids=[c[0] for c in CASES])
def test_each_class_flags_weak_tests_and_not_sound_ones(cls, prompt, weak, sound):
    """A sound test has two expected values at least: a single assert is passed by the constant that is its value."""
    entry = prompt.split("(")[0].removeprefix("def ")
    got = check(prompt, he(prompt, *weak, entry=entry))
    assert got.weak_tests is not None and kind(got.weak_tests) == cls, got
    assert got.runs == len(programs(prompt, he(prompt, *weak, entry=entry))) and got.bad_reference is None
    fine = check(prompt, he(prompt, *sound, entry=entry))
    assert fine.weak_tests is None and fine.passed == [], fine


def test_the_battery_covers_every_class():
    assert {c[0] for c in CASES} == set(CLASSES)


def test_examples_are_read_from_the_docstring_in_its_several_styles():
    names = [n for n, _ in programs(ADD, he(ADD, "assert candidate(1, 2) == 3", entry="add"))]
    assert names[:2] == ["none", "empty(0)"] and "constant(3)" in names and "lookup" in names
    assert "order" not in names  # two small integers: a sequence chance would give too often
    table = dict(programs(TITLE, he(TITLE, "assert candidate('a') == 'A'", entry="title")))
    assert "{\"('ann',)\": 'Ann', \"('bob',)\": 'Bob'}" in table["lookup"] and "['Ann', 'Bob']" in table["order"]


STDIO_PROMPT = "Print the sum of two integers.\nExamples\nInput\n1 2\nOutput\n3\nInput\n10 20\nOutput\n30\n"


@pytest.mark.parametrize(
    "cls, prompt, weak, sound",
    [
        ("echo", "Print the line.", (["1 2\n", "3\n"], ["1 2", "3"]), (["1 2\n", "3 4\n"], ["3", "7"])),
        ("constant", "Say YES.", (["1 2\n", "5 5\n"], ["YES", "YES"]), (["1 2\n", "5 5\n"], ["NO", "YES"])),
        ("empty", "Print 0.", (["1\n", "2\n"], ["0", "0"]), (["1\n", "2\n"], ["1", "0"])),
        ("lookup", STDIO_PROMPT, (["10 20\n", "1 2\n"], ["30", "3"]), (["1 2\n", "30 40\n"], ["3", "70"])),
    ],
    ids=["echo", "constant", "empty", "lookup"],
)
def test_stdio_classes(cls, prompt, weak, sound):
    got = check(prompt, {"inputs": weak[0], "outputs": weak[1]})
    assert got.weak_tests is not None and kind(got.weak_tests) == cls, got
    fine = check(prompt, {"inputs": sound[0], "outputs": sound[1]})
    assert fine.weak_tests is None, fine


def _passes(program: str, ref: dict) -> bool:
    return verify_code(Candidate(f"```python\n{program}\n```", "code", ref, think=False)).accepted


def test_stdio_order_keeps_its_count_across_cases_in_the_sandbox():
    """A stdin/stdout program that prints the shown outputs in turn passes tests that are those examples in order
    (each case is a fresh process, but /tmp lasts the whole run), and fails an extra case."""
    prompt = "Name the colour.\nInput: 1\nOutput: red\nInput: 2\nOutput: green\nInput: 3\nOutput: blue\n"
    weak = {"inputs": ["1", "2", "3"], "outputs": ["red", "green", "blue"]}
    order = dict(programs(prompt, weak))["order"]
    assert _passes(order, weak)
    assert not _passes(order, {"inputs": ["1", "2", "3", "4"], "outputs": ["red", "green", "blue", "cyan"]})
    assert not _passes(order, {"inputs": ["2", "1", "3"], "outputs": ["green", "red", "blue"]})


def test_function_calls_format():
    weak = check("Return x.", {"fn_name": "f", "inputs": [[1], [2]], "outputs": [1, 2]})
    assert weak.weak_tests == "echo"
    sound = check("Return 2x.", {"fn_name": "f", "inputs": [[1], [2], [5]], "outputs": [2, 4, 10]})
    assert sound.weak_tests is None and sound.runs > 3
    const = check("Is it odd?", {"fn_name": "f", "inputs": [[1], [3]], "outputs": [True, True]})
    assert const.weak_tests == "constant(True)"


def test_a_reference_solution_that_fails_the_tests_is_bad_reference():
    ref = he(DOUBLE, "assert candidate(3) == 6", "assert candidate(0) == 0", entry="double")
    assert check(DOUBLE, ref, DOUBLE + "    return 2 * x\n").bad_reference is False
    bad = check(DOUBLE, ref, DOUBLE + "    return x + 2\n")
    assert bad.bad_reference is True and bad.weak_tests is None
    assert check(DOUBLE, ref).bad_reference is None  # no reference solution: nothing to say


def test_tests_that_do_not_run_are_bad_reference():
    got = check(DOUBLE, {"test": "def check(candidate):\n    assert candidate(3) ==\n", "entry_point": "double"})
    assert got.bad_reference is True and got.detail and got.weak_tests is None


PRIMES = 'def primes(n: int) -> list:\n    """The first n primes.\n    >>> primes(3)\n    [2, 3, 5]\n    """\n'
PRIMES_SOLUTION = PRIMES + (
    "    out, k = [], 2\n    while len(out) < n:\n        if all(k % d for d in range(2, k)):\n"
    "            out.append(k)\n        k += 1\n    return out\n"
)
SORT = 'def sort_in_place(xs: list) -> None:\n    """Sort xs in place."""\n'


def test_tests_of_type_and_length_only_pass_the_shaped_solution():
    """The reference solution with its answers' values changed, their types and lengths kept: tests that check only
    those pass it (no other trivial program does: the length asked for is not the examples')."""
    shape_only = he(PRIMES, "r = candidate(5)", "assert isinstance(r, list) and len(r) == 5",
                    "assert all(isinstance(x, int) for x in r)", entry="primes")  # fmt: skip
    got = check(PRIMES, shape_only, PRIMES_SOLUTION)
    assert got.weak_tests == "shaped" and got.passed == ["shaped"] and got.bad_reference is False
    assert check(PRIMES, shape_only).weak_tests is None  # without a reference solution the battery misses it
    sound = he(PRIMES, "assert candidate(5) == [2, 3, 5, 7, 11]", "assert candidate(1) == [2]", entry="primes")
    assert check(PRIMES, sound, PRIMES_SOLUTION).weak_tests is None


def test_the_shaped_solution_perturbs_an_in_place_answer_and_never_passes_unchanged():
    solution = SORT + "    xs.sort()\n"
    moved = he(SORT, "xs = [3, 1, 2]", "candidate(xs)", "assert len(xs) == 3 and xs != [3, 1, 2]",
               entry="sort_in_place")  # fmt: skip
    assert check(SORT, moved, solution).weak_tests == "shaped"  # changed, right length: no order checked
    sound = he(SORT, "xs = [3, 1, 2]", "candidate(xs)", "assert xs == [1, 2, 3]", entry="sort_in_place")
    assert check(SORT, sound, solution).weak_tests is None
    empty = 'def nothing() -> list:\n    """An empty list."""\n'  # an answer with nothing in it to change
    got = check(empty, he(empty, "assert candidate() == []", entry="nothing"), empty + "    return []\n")
    assert "shaped" not in got.passed and got.bad_reference is False
