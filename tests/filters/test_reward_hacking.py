"""The reward-hacking battery: every program in hostile.py is rejected, as root and as an unprivileged uid, in the
three test formats, and honest programs still pass. The same attacks against the old one-interpreter harness
(weak_harness.py) pass, which shows each of these tests can fail."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import hostile
import pytest
import run_as
from run_as import MODES, UID

from filters import code as code_verifier
from filters.code import _reports, _same_call, call_match

ATTACKS = hostile.attacks()
# records of other shapes (hostile.RECORD_ATTACKS): (name, reference, program), and the reason each must get
RECORDS = [(name, ref, prog) for name, ref, prog, _ in hostile.RECORD_ATTACKS]
RECORD_HONEST = hostile.RECORD_HONEST
HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def honest() -> list[tuple[str, str, str]]:
    """Right answers, some of them noisy: they print, define helpers, read stdin in odd ways, return tuples."""
    out = [(f"right_{fmt}", fmt, hostile.RIGHT[fmt]) for fmt in hostile.FORMATS]
    out += [
        ("prints_and_helpers", "humaneval", "def _sum(xs):\n    return sum(xs)\n\ndef add(a, b):\n"
         "    print('adding', a, b)\n    return _sum([a, b])\n"),
        ("solution_class", "calls", "class Solution:\n    def add(self, a, b):\n        return a + b\n"),
        ("float_sum", "calls", "def add(a, b):\n    return float(a + b)\n"),  # 3.0 for 3: the same number
        ("sys_stdin", "stdio", "import sys\nfor line in sys.stdin:\n    print(sum(map(int, line.split())))\n"),
    ]  # fmt: skip
    return out


@functools.cache
def verdicts(mode: str) -> dict[tuple[str, str], tuple[bool, str | None]]:
    cases = ATTACKS + honest() + hostile.uniform() + RECORDS + RECORD_HONEST
    triples = [(fmt, prog, hostile.wall_s(name)) for name, fmt, prog in cases]
    got = hostile.judge_all(triples) if mode == "root" or os.geteuid() != 0 else as_user(triples)
    return {(name, fmt): tuple(v) for (name, fmt, _), v in zip(cases, got, strict=True)}


def as_user(cases: list, harness: str | None = None) -> list:
    """hostile.judge_all as an unprivileged uid (`harness` in place of code_harness.py)."""
    with run_as.copy({"hostile.py": (HERE / "hostile.py").read_text()}, harness) as tmp:
        res = subprocess.run(run_as.command("user", "hostile.py"), input=json.dumps(cases), capture_output=True,
                             text=True, cwd=tmp, env=run_as.env(tmp), timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "fmt"), [(n, f) for n, f, _ in ATTACKS], ids=[f"{n}-{f}" for n, f, _ in ATTACKS])
def test_attack_is_rejected(mode, name, fmt):
    accepted, reason = verdicts(mode)[(name, fmt)]
    assert not accepted, f"{name} ({fmt}) passed as {mode}"
    assert reason in {"wrong_answer", "runtime_error", "timeout", "output_limit"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "fmt"), [(n, f) for n, f, _ in honest()], ids=[n for n, _, _ in honest()])
def test_honest_programs_pass(mode, name, fmt):
    assert verdicts(mode)[(name, fmt)] == (True, None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("name", "ref", "reason"),
    [(n, r, why) for n, r, _, why in hostile.RECORD_ATTACKS],
    ids=[f"{n}-{r}" for n, r, _, _ in hostile.RECORD_ATTACKS],
)
def test_no_record_shape_lets_its_wrong_program_through(mode, name, ref, reason):
    """Each passed before: a helper or a builtin's name the answer supplied, a check() nobody called, arguments
    changed on a copy, a tolerance of 1 at 1e6, a scalar for a list, an int that made the host's comparison raise."""
    assert verdicts(mode)[(name, ref)] == (False, reason)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("name", "ref"), [(n, r) for n, r, _ in RECORD_HONEST], ids=[f"{n}-{r}" for n, r, _ in RECORD_HONEST]
)
def test_honest_programs_pass_records_of_every_shape(mode, name, ref):
    assert verdicts(mode)[(name, ref)] == (True, None)


def test_the_same_verdicts_as_root_and_as_a_user():
    if len(MODES) < 2:
        pytest.skip("needs root, to run the verifier both ways")
    assert verdicts("root") == verdicts("user")


# What the one-interpreter harness let through (the issue that asked for this battery lists them): against it,
# these attacks pass, so the tests above are not passing for want of a working attack. (Reading /proc/self/mem is
# left out: as root the old harness was already non-dumpable after its uid switch, which closes that file to it.)
WEAK_PASSES = [
    "always_equal", "int_subclass_eq", "str_subclass_eq", "list_subclass_eq", "patch_builtins_abs",
    "patch_math_isclose", "steal_nonce_frames", "steal_nonce_gc", "steal_nonce_ctypes", "report_on_stack",
    "rewrite_test", "settrace", "bytecode_constant", "report_on_stack_in_call", "stop_iteration",
]  # fmt: skip


def test_the_attacks_pass_the_old_one_interpreter_harness(monkeypatch):
    weak = (HERE / "weak_harness.py").read_text()
    monkeypatch.setattr(code_verifier, "_harness_source", lambda: weak)
    progs = {name: (fmt, prog) for name, fmt, prog in ATTACKS if fmt.startswith("humaneval")}
    got = hostile.judge_all([progs[name] for name in WEAK_PASSES])
    passed = [name for name, (ok, _) in zip(WEAK_PASSES, got, strict=True) if ok]
    assert passed == WEAK_PASSES


def test_a_dumpable_test_process_would_give_its_nonce_away():
    """The harness weakened: without no_dump(), as an ordinary user (no uid switch to make it non-dumpable), the
    candidate process reads the test process's memory, finds the nonce and forges a pass."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the verifier as another uid")
    source = (ROOT / "filters" / "code_harness.py").read_text()
    weak = source.replace("    no_dump()\n    side = fork_candidate", "    side = fork_candidate")
    assert weak != source
    steal = next(prog for name, fmt, prog in ATTACKS if (name, fmt) == ("steal_nonce_parent_mem", "humaneval"))
    assert as_user([("humaneval", steal)], harness=weak) == [[True, None]]
    assert as_user([("humaneval", steal)]) == [[False, "wrong_answer"]]


# --- the function-call format's comparison and the host's reading of reports ---


@pytest.mark.parametrize(
    ("got", "want", "same"),
    [
        (1, [1, 2], False),  # the first element of a longer list is not the list
        ([1, 2], [[1, 2]], False),  # a one-element list is a list, unless the record says so (below)
        ([[1, 2], [3]], [[1, 2], [3]], True),
        ([1, 2], [[1, 2], [3]], False),
        (True, 1, False),  # bool is not int
        (1, True, False),
        ([True, False], [1, 0], False),
        (True, True, True),
        (2.0, 2, True),  # an int answer's exact value
        (2.0000001, 2, False),
        (0.30000000000000004, 0.3, True),  # float answers within the stated tolerance
        (0.3001, 0.3, False),
        (float("nan"), float("nan"), False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": True}, {"a": 1}, False),
        ("1", 1, False),
        (None, [], False),
    ],
)
def test_function_call_comparison_is_exact(got, want, same):
    assert _same_call(json.dumps(got), want) is same


def test_a_call_record_states_its_tolerance_and_its_wrapping():
    assert _same_call("1000000", 1000000.75) is False  # the default: 1e-9, relative or absolute
    assert _same_call("1000000.7500000001", 1000000.75) is True
    absolute = call_match({"atol": 1e-5})  # as LeetCode states it: within 1e-5 of the actual answer
    assert _same_call("1000000.750009", 1000000.75, **absolute)
    assert not _same_call("1000000.75002", 1000000.75, **absolute)
    relative = call_match({"rtol": 1e-6})
    assert _same_call("1000000.5", 1000000.75, **relative) and not _same_call("0.0000001", 0.0, **relative)
    wrapped = call_match({"wrapped_outputs": True})
    assert _same_call("[1, 2]", [[1, 2]], **wrapped) and _same_call("[[1, 2]]", [[1, 2]], **wrapped)
    assert not _same_call("1", [1, 2], **wrapped)  # the first element of a longer list is not the list
    assert _same_call("Infinity", float("inf")) and not _same_call("1" + "0" * 400, float("inf"))
    for bad in ({"atol": -1}, {"rtol": "1e-5"}, {"atol": float("nan")}, {"wrapped_outputs": 1}):
        with pytest.raises(ValueError, match="reference: (atol|rtol|wrapped_outputs)"):
            call_match(bad)


def test_no_report_can_crash_the_host():
    nonce = "ab" * 16
    huge_case = f"{nonce} {'9' * 5000} ok 1\n{nonce} 0 ok 1\n"
    assert _reports(huge_case, nonce) == {0: ("ok", "1")}
    deep = "[" * 100_000 + "]" * 100_000
    assert _same_call(deep, [1]) is False  # nested past the recursion limit: a wrong answer
    assert _same_call("not json", 1) is False
    assert _same_call("1" * 5000, 1) is False  # int() of 5,000 digits raises ValueError; still a wrong answer
    assert _same_call("1" * 400, 0.5) is False  # too large for a float: math.isclose raised OverflowError


def test_a_deep_or_cyclic_return_value_is_a_wrong_answer():
    ref = {"fn_name": "f", "inputs": [[1]], "outputs": [[1]]}
    deep = "def f(x):\n    v = []\n    for _ in range(100_000):\n        v = [v]\n    return v\n"
    cyclic = "def f(x):\n    v = []\n    v.append(v)\n    return v\n"
    he = {"test": "def check(candidate):\n    assert candidate(1) != [1]\n", "entry_point": "f"}
    got = hostile.judge_all([("calls", deep), ("calls", cyclic)])
    assert [ok for ok, _ in got] == [False, False]
    # cyclic values never reach a test's comparison, whatever the test says about them
    from filters.base import Candidate
    from filters.code import verify_code

    assert not verify_code(Candidate(f"```python\n{cyclic}```", "code", he, think=False)).accepted
    del ref


def test_the_test_process_takes_helpers_from_the_prompt_not_the_answer():
    # HumanEval/32 style: the tests check the answer with `poly`, which the prompt defines; an answer that redefines
    # poly to return 0 must not make any root look right
    prefix = "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n\ndef find_zero(xs):\n    ...\n"
    test = "def check(candidate):\n    assert abs(poly([-6, 11, -6, 1], candidate([-6, 11, -6, 1]))) < 1e-6\n"
    ref = {"test": test, "entry_point": "find_zero", "prefix": prefix}
    cheat = "def poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 42.0\n"
    right = "def find_zero(xs):\n    return 1.0\n"
    from filters.base import Candidate
    from filters.code import verify_code

    def judge(p):
        return verify_code(Candidate(f"```python\n{p}```", "code", ref, think=False))

    assert judge(cheat).reason == "wrong_answer"
    assert judge(right).accepted


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


OUTLIVES = 40  # seconds: longer than any sandboxed program of the suite may run (the longest wall limit is 30 s)


def _sandboxed() -> dict[str, tuple[float, int, bytes]]:
    """Python processes under a sandbox uid (UID, or the sandbox's random high one): pid -> (age in s, uid, cmd)."""
    tick, now = os.sysconf("SC_CLK_TCK"), float(Path("/proc/uptime").read_text().split()[0])
    out = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{d}").st_uid
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            start = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[19]) / tick
        except (OSError, IndexError, ValueError):
            continue
        if (uid == UID or uid >= 1 << 20) and b"python" in cmd:
            out[d] = (now - start, uid, cmd[:80])
    return out


def test_nothing_is_left_running_after_the_battery():
    """No sandboxed process outlives its limits. Tests running beside this one (pytest -n) may have theirs running
    now, within their limits: a process is a leftover once it has lived longer than any limit allows."""
    for mode in MODES:
        verdicts(mode)  # computed once for the tests above; here, only their leftovers are looked for
    time.sleep(1)
    found = _sandboxed()
    while found and min(age for age, _, _ in found.values()) < OUTLIVES:  # until each has ended or outlived them
        time.sleep(1)
        found = {d: v for d, v in _sandboxed().items() if d in found}
    assert list(found.values()) == []
