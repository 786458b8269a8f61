"""The code verifier: the three test formats right and wrong, every reason code, early exits and fake success lines,
which fenced block counts, and the way from a record through `verify` and a verification worker."""

from __future__ import annotations

import dataclasses

import pytest

from factory.workers import VerifyPool
from filters.base import Candidate
from filters.code import extract_code, verify_code
from filters.registry import Settings, run_chain
from filters.sandbox import Limits
from filters.verify import verify

# The CPU limit decides: on a busy machine 2 CPU seconds can take more than a few seconds of wall time, which would
# turn a loop's `timeout` on one case into cut-off cases, or a slow honest run into a timeout.
LIM = Limits(wall_s=20, cpu_s=2, memory_mb=256, processes=16, file_mb=4, output_kb=64)
HE = {"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
      "entry_point": "add"}  # fmt: skip
IO = {"inputs": ["1 2\n", "5 7\n", "10 -3\n"], "outputs": ["3\n", "12", "7\n\n"]}
FN = {"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], "outputs": [[0, 1], [[1, 2]]],
      "wrapped_outputs": True}  # fmt: skip
LOOP = "while True:\n    pass\n"
MEMORY = "x = bytearray(2**30)\n"
FLOOD = "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n"


def fenced(code: str, ref: dict, think: bool = False) -> Candidate:
    text = f"<think>Let me write it.</think>\nHere:\n```python\n{code}\n```\n" if think else f"```python\n{code}\n```"
    return Candidate(text, "code", ref, think=think)


def judge(code: str, ref: dict, limits: Limits = LIM):
    return verify_code(fenced(code, ref), limits)


def body(lines: str) -> str:
    return "".join(f"    {ln}\n" for ln in lines.splitlines())


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("def add(a, b):\n    return a + b\n", None),
        ("def add(a, b):\n    return a - b\n", "wrong_answer"),
        ("def add(a, b):\n    return a + b + (a < 0)\n", "wrong_answer"),
        ("def add(a, b):\n    return a.b\n", "runtime_error"),
        ("def add(a, b):\n" + body(LOOP), "timeout"),
        ("def add(a, b):\n" + body(MEMORY), "memory_limit"),
        ("def add(a, b):\n" + body(FLOOD), "output_limit"),
        ("def add(a, b)\n    return a + b\n", "syntax_error"),
        ("def plus(a, b):\n    return a + b\n", "runtime_error"),  # no such entry point
    ],
)
def test_humaneval_format(code, reason):
    v = judge(code, HE)
    assert v.reason == reason and v.accepted is (reason is None)


def test_with_an_entry_point_the_tests_take_only_it_from_the_program():
    ref = {"test": "def check(candidate):\n    assert candidate(3) == helper(3) == 9\n", "entry_point": "sq"}
    v = judge("def helper(x):\n    return x * x\n\ndef sq(x):\n    return helper(x)\n", ref)
    assert (v.reason, v.scores) == ("bad_reference", {"error": "the tests use helper, which neither the prompt's "
                                                      "code (prefix) nor the tests define"})  # fmt: skip
    plain = {"test": "assert sq(4) == 16\nassert sq(0) == 0\n"}  # MBPP style: asserts, no check()
    assert judge("def sq(x):\n    return x * x\n", plain).accepted
    assert judge("def sq(x):\n    return x + x\n", plain).reason == "wrong_answer"
    assert judge("def square(x):\n    return x * x\n", plain).reason == "runtime_error"  # the answer's to define
    named = {"test": plain["test"], "entry_point": "sq"}  # asserts with an entry point: no check() needed
    assert judge("def sq(x):\n    return x * x\n", named).accepted
    assert judge("def sq(x):\n    return x + x\n", named).reason == "wrong_answer"
    broken = {"test": "def check(candidate):\n    assert candidate(4) == 16\n", "entry_point": None}
    assert judge("def sq(x):\n    return x * x\n", broken).scores["error"].startswith("the tests never call")


ADD_IO = "a, b = map(int, input().split())\n"


# MBPP's own references (sanitized 88, 737): a Counter compared with a dict literal, a regex match tested for truth
COUNTER = "import collections\ndef freq(xs):\n    return collections.Counter(xs)\n"
MATCH = "import re\ndef starts_vowel(s):\n    return re.search('^[aeiou]', s)\n"
MBPP = {
    "test": "assert freq([1, 1, 2]) == {1: 2, 2: 1}\nassert starts_vowel('annie')\nassert not starts_vowel('dawood')\n"
}


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (COUNTER + MATCH, None),
        (COUNTER.replace("Counter(xs)", "Counter(xs[1:])") + MATCH, "wrong_answer"),
        (COUNTER + MATCH.replace("^[aeiou]", "[aeiou]"), "wrong_answer"),  # a match on "dawood" is truthy
        # an object that is not a builtin crosses as its truth alone: any other use of it is a wrong answer
        (
            COUNTER + "class M:\n    __bool__ = lambda s: True\n    __eq__ = lambda s, o: True\n"
            "def starts_vowel(s):\n    return M()\n",
            "wrong_answer",
        ),
        ("class F(dict):\n    __eq__ = lambda s, o: True\ndef freq(xs):\n    return F()\n" + MATCH, "wrong_answer"),
    ],
)
def test_mbpp_returns_that_are_not_builtins(code, reason):
    v = judge(code, MBPP)
    assert v.reason == reason and v.accepted is (reason is None)
    truth_used = {"test": "assert starts_vowel('annie') != 0\n"}  # true of a match, yet not a truth test
    assert judge(MATCH, truth_used).reason == "wrong_answer"
    enum = "import enum\nclass E(enum.IntEnum):\n    A = 3\ndef three():\n    return E.A\n"  # crosses as 3
    assert judge(enum, {"test": "assert three() == 3\n"}).accepted
    assert judge(enum, {"test": "assert three() == 4\n"}).reason == "wrong_answer"


@pytest.mark.parametrize(
    ("code", "reason", "passed"),
    [
        (ADD_IO + "print(a + b, '   ')\nprint()\nprint()\n", None, 3),  # trailing spaces and blank lines don't count
        ("import sys\nfor line in sys.stdin:\n    print(sum(map(int, line.split())))\n", None, 3),
        (ADD_IO + "print(a * b)\n", "wrong_answer", 0),
        (ADD_IO + "print(a + b if a != 5 else 0)\n", "wrong_answer", 2),
        (ADD_IO + "print(' ', a + b)\n", "wrong_answer", 0),  # leading whitespace does count
        (ADD_IO + "print(a + b)\nif a == 10:\n    raise ValueError\n", "runtime_error", 2),
        (ADD_IO + "print(a + b)\nif a == 5:\n" + body(LOOP), "timeout", 2),  # CPU: per case
        (ADD_IO + "if a == 5:\n" + body(MEMORY) + "print(a + b)\n", "memory_limit", 2),
        (ADD_IO + "print(a + b)\n" + FLOOD, "output_limit", 0),
        (ADD_IO + "print(a + b)\nexit(0)\n", None, 3),  # exit() after the answer is fine
        ("import sys\nsys.exit(0)\n", "wrong_answer", 0),  # before it, the output is wrong
        ("raise SystemExit('no')\n", "runtime_error", 0),
    ],
)
def test_stdin_stdout_format(code, reason, passed):
    v = judge(code, IO)  # the CPU limit is per case, the wall limit for all cases together
    assert v.reason == reason and v.accepted is (reason is None)
    assert v.scores == {"tests_passed": passed, "tests_total": 3}


def test_each_stdin_case_sees_a_fresh_module_state():
    code = "import sys\nif hasattr(sys, 'seen'):\n    print('stale')\nsys.seen = 1\n" + ADD_IO + "print(a + b)\n"
    assert judge(code, IO).accepted
    lines = {"inputs": [["3", "1 2 3"]], "outputs": [["6"]]}  # inputs and outputs as lists of lines
    assert judge("input()\nprint(sum(map(int, input().split())))\n", lines).accepted


TWO_SUM = "seen = {}\nfor i, x in enumerate(nums):\n    if target - x in seen:\n        return [seen[target - x], i]\n"
TWO_SUM += "    seen[x] = i\n"


@pytest.mark.parametrize(
    ("code", "reason", "passed"),
    [
        ("def twoSum(nums, target):\n" + body(TWO_SUM), None, 2),
        ("class Solution:\n    def twoSum(self, nums, target):\n" + body(body(TWO_SUM)), None, 2),
        (
            "def twoSum(nums, target):\n" + body(TWO_SUM.replace("[seen[target - x], i]", "(seen[target - x], i)")),
            None,
            2,
        ),  # fmt: skip
        ("def twoSum(nums, target):\n    return [0, 1]\n", "wrong_answer", 1),
        ("def twoSum(nums, target):\n    return {0, 1}\n", "wrong_answer", 0),  # not JSON: never compared
        (
            "class Any:\n    def __eq__(self, other):\n        return True\n\ndef twoSum(nums, target):\n"
            "    return Any()\n",
            "wrong_answer",
            0,
        ),  # fmt: skip
        ("def twoSum(nums, target):\n    return [0, 1] if nums[0] == 2 else nums[99]\n", "runtime_error", 1),
        ("def twoSum(nums, target):\n" + body(LOOP), "timeout", 0),
        ("def twoSum(nums, target):\n" + body(MEMORY), "memory_limit", 0),
        ("def other(nums, target):\n    return [0, 1]\n", "runtime_error", 0),
        ("import sys\nsys.exit(0)\n", "runtime_error", 0),
    ],
)
def test_function_call_format(code, reason, passed):
    v = judge(code, FN)
    assert v.reason == reason and v.accepted is (reason is None)
    assert v.scores == {"tests_passed": passed, "tests_total": 2}


@pytest.mark.parametrize("ref", [HE, IO, FN], ids=["humaneval", "stdio", "calls"])
@pytest.mark.parametrize(
    "cheat",
    [
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        "import os, sys\nsys.stdout.flush()\nos.kill(os.getpid(), 9)\n",
        "print('0 passed -')\nprint('\\n' + '0' * 32 + ' 0 passed -')\nprint('All tests passed')\n"
        "import sys\nsys.exit(0)\n",
        "import os\nprint(os.read(3, 4096))\n",  # the job (and its nonce) was read and closed before this ran
    ],
)
def test_exiting_early_or_faking_success_never_passes(ref, cheat):
    v = judge(cheat, ref)
    assert not v.accepted and v.reason in {"runtime_error", "wrong_answer"}


def test_the_last_python_block_counts():
    text = "Try:\n```python\ndef add(a, b):\n    return a - b\n```\nFixed:\n```python\ndef add(a, b):\n"
    text += "    return a + b\n```\nOutput:\n```text\n5\n```\n"
    assert extract_code(text, think=False) == "def add(a, b):\n    return a + b\n"
    assert verify_code(Candidate(text, "code", HE, think=False), LIM).accepted
    flipped = text.replace("a - b", "TMP").replace("a + b", "a - b").replace("TMP", "a + b")
    assert verify_code(Candidate(flipped, "code", HE, think=False), LIM).reason == "wrong_answer"
    assert extract_code("```\nprint(1)\n```", think=False) == "print(1)\n"  # a bare fence is Python too
    assert extract_code("  ```py\n  x = 1\n  ```", think=False) == "x = 1\n"  # an indented one, dedented


def test_no_code():
    for text, think in [("def add(a, b): return a + b", False), ("```python\n\n```", False),
                        ("```bash\nls\n```", False), ("```python\nx = 1", False),  # unclosed: cut off
                        ("<think>```python\ndef add(a, b): return a + b\n```</think>Done.", True),
                        ("```python\ndef add(a, b): return a + b\n```", True)]:  # fmt: skip
        assert verify_code(Candidate(text, "code", HE, think=think), LIM).reason == "no_code", text
    inside_think = "<think>\n```python\nx = 1\n```\n</think>\n```python\ndef add(a, b):\n    return a + b\n```"
    assert verify_code(Candidate(inside_think, "code", HE, think=True), LIM).accepted


def test_a_reference_whose_inputs_and_outputs_do_not_pair_up_is_an_error():
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        judge("print(1)", {"inputs": ["1", "2"], "outputs": ["1"]})


def test_verify_sends_code_with_tests_to_the_sandbox():
    good = fenced("def add(a, b):\n    return a + b\n", HE, think=True)
    assert verify(good, LIM).accepted
    assert verify(fenced("print(3)", {"inputs": [""], "outputs": ["3"]})).accepted
    assert verify(fenced("def f(x):\n    return x\n", {"fn_name": "f", "inputs": [[1]], "outputs": [1]})).accepted
    for ref in ({}, {"test": "", "entry_point": "add"}, {"inputs": [], "outputs": []}):
        assert verify(fenced("def add(a, b):\n    return a + b\n", ref)).reason == "no_verifier"
    assert verify(Candidate("```python\nprint(1)\n```", "general", HE, think=False)).reason == "no_verifier"
    names = ["format", "verify"]
    assert run_chain(good, names, Settings(sandbox=LIM)).accepted
    slow = fenced("import time\ntime.sleep(1.5)\ndef add(a, b):\n    return a + b\n", HE, think=True)
    assert run_chain(slow, names, Settings(sandbox=Limits(wall_s=1))).reason == "timeout"  # the settings reach it


def test_verification_workers_run_code_and_go_on_after_an_attack():
    chain = ["format", "verify"]
    items = [
        fenced("def add(a, b):\n    return a + b\n", HE, think=True),
        fenced("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", HE, True),
        fenced("def add(a, b):\n    return a * b\n", HE, think=True),
        fenced(ADD_IO + "print(a + b)\n", IO, think=True),
    ]
    lim = dataclasses.replace(LIM, wall_s=5)  # the fork bomb ends only at the wall clock
    with VerifyPool(2, timeout=30, warm=False, settings=Settings(sandbox=lim)) as pool:
        verdicts = pool.verdicts([(c, chain) for c in items])
    assert [v.reason for v in verdicts] == [None, "timeout", "wrong_answer", None]
