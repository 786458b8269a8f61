"""Code verification: run the answer's last fenced code block against the prompt's tests, inside the sandbox.

The three test formats datasets use (a record's `reference`):

- HumanEval: {"test": "def check(candidate): ...", "entry_point": "f", "prefix": "<the prompt's code>"}: the
  prefix and the program, then the test code and check(f) (a test without check() is asserts that call f by name).
  The prefix is the prompt as it stood before the answer (HumanEval's imports, helpers such as /32 `poly` and /38
  `encode_cyclic`); the tests take those helpers from it, never from the answer: with an entry_point, f alone is the
  answer's. Without one (MBPP-style asserts) the tests call the program's functions by name, every name they use
  that neither the prefix nor Python's builtins define; a function named like a builtin (MBPP's "write your own
  pow") needs the entry_point, which then shadows the builtin. Arguments the answer changes in place change in the
  tests too. A name the tests use that nothing defines, or tests that never call the answer (check() with no
  entry_point, asserts on builtins alone) are bad_reference, never a pass: the record is broken.
- stdin/stdout (APPS, TACO, CodeContests): {"inputs": [...], "outputs": [...]}: each input goes to a fresh process
  (forked inside one sandbox: ~1 ms a case against ~13 ms for a sandbox each), whose stdout is compared line by line,
  trailing whitespace and trailing blank lines ignored. `wall_s` covers all the cases of one answer together.
- function calls (APPS/TACO call-based, LeetCode): {"fn_name": "f", "inputs": [[args], ...], "outputs": [...]}:
  f(*args), or Solution().f(*args), compared exactly as JSON values (`_equal`: True is not 1, an int is exact).
  Optional: `atol` and `rtol`, the task's float tolerance (`call_match`; without them a float answer must be within
  1e-9, relative or absolute), and `wrapped_outputs: true` where an expected [x] also accepts x (APPS and TACO wrap
  a call's answer in a list).

Reasons: no_code, syntax_error (compiled here, never run), wrong_answer, runtime_error, timeout, memory_limit,
output_limit, bad_reference (the record's tests are broken: they use a name nothing defines, or never call the answer;
the verdict's `error` says which). The formats with cases score tests_passed / tests_total.

Why a verdict cannot be gamed (a verdict is a reward, and RL tries everything; tests/filters/test_reward_hacking.py
tries it). Inside the sandbox the harness (code_harness.py) is two processes. The test process runs the tests and
writes the reports; it never executes a line of the candidate's code, and it is non-dumpable, so the candidate's
process (the same uid) cannot read its memory, trace it, or open its descriptors. The candidate's process is forked
before the job is read, so the nonce and the tests are never in its memory; its return values come back as builtin
values checked on arrival (no object that claims to equal anything), its stdout goes to stderr. The nonce is drawn
here for each run and reaches the test process on fd 3; only a report line carrying it counts, and a run without
one failed. So exiting early, killing the test process, swallowing an exception, patching builtins, walking frames,
reading memory or printing "all tests passed" never passes. In the stdin and fn_name formats the expected outputs
never enter the sandbox at all: a report is only a digest or a JSON value that this side compares.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import re
import secrets
import textwrap
from functools import cache
from pathlib import Path

from filters import sandbox
from filters.answer import split_think
from filters.base import Candidate, Verdict, accept, reject
from filters.code_harness import normalize
from filters.sandbox import Limits

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
_PYTHON = {"", "python", "py", "python3", "py3"}
# function-call answers where the record states no tolerance: float noise passes (summing in another order is off by
# ~1e-16 relatively), an answer off by 0.75 at 1e6 does not (1e-6 relative, 1 there, let a floor division through);
# a task that accepts 1e-5 (LeetCode, Codeforces) says so in the record's atol / rtol
FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-9
_REASONS = {"wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit"}


def has_tests(ref: dict) -> bool:
    """A reference this verifier can run: HumanEval test code, or cases with expected outputs."""
    return bool(str(ref.get("test") or "").strip()) or bool(ref.get("outputs"))


def extract_code(text: str, think: bool = True) -> str | None:
    """The last ```python (or bare ```) block of the answer; with `think`, only after </think>."""
    reasoning, summary = split_think(text)
    if think and reasoning is None:
        return None
    blocks = [body for lang, body in _FENCE.findall(summary) if lang.lower() in _PYTHON]
    code = textwrap.dedent(blocks[-1]) if blocks else ""
    return code if code.strip() else None


def verify_code(c: Candidate, limits: Limits | None = None) -> Verdict:
    code = extract_code(c.text, c.think)
    if code is None:
        return reject("no_code")
    ref = c.reference or {}
    if ref.get("prefix"):  # what the prompt gave the answer to build on (HumanEval's imports)
        code = f"{ref['prefix']}\n{code}"
    try:  # cheap and safe: compile only, nothing of it runs here
        compile(code, "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return reject("syntax_error")
    limits = limits or Limits()
    if ref.get("fn_name"):
        return _cases(code, ref, limits, "calls")
    if str(ref.get("test") or "").strip():
        return _humaneval(code, ref, limits)
    if ref.get("outputs"):
        return _cases(code, ref, limits, "stdio")
    return reject("no_verifier")


def _humaneval(code: str, ref: dict, limits: Limits) -> Verdict:
    job = {"format": "humaneval", "test": ref["test"], "entry_point": ref.get("entry_point") or ""}
    job |= {"prefix": ref.get("prefix") or "", "output_bytes": limits.output_kb << 10}
    res, reports = _harness(code, job, limits)
    if res.output_exceeded:
        return reject("output_limit")
    status, data = reports.get(0, ("", ""))
    if status == "passed":
        return accept()
    if status == "bad_reference":  # the dataset's own code, not the answer's: a broken record, said as such
        return reject("bad_reference", error=_broken(data))
    return reject(status if status in _REASONS else _lost(res))


def _broken(data: str) -> str:
    """What is wrong with a reference, from the harness's bad_reference report."""
    if data == "no_call":
        return "the tests never call the answer: name the function under test in entry_point"
    name = data.partition(":")[2]
    if data.startswith(("NameError:", "UnboundLocalError:")) and name.isidentifier():
        return f"the tests use {name}, which neither the prompt's code (prefix) nor the tests define"
    return f"the prompt's code (prefix) or the test code does not run ({data[:100]})"


def _cases(code: str, ref: dict, limits: Limits, fmt: str) -> Verdict:
    inputs, outputs = ref.get("inputs") or [], ref["outputs"]
    if len(inputs) != len(outputs):
        raise ValueError(f"reference: {len(inputs)} inputs but {len(outputs)} outputs; they must pair up")
    match = call_match(ref) if fmt == "calls" else {}
    job = {"format": fmt, "inputs": inputs, "fn_name": ref.get("fn_name"), "output_bytes": limits.output_kb << 10}
    res, reports = _harness(code, job, limits)
    n = len(outputs)
    if res.output_exceeded:
        return reject("output_limit", tests_passed=0, tests_total=n)
    if -1 in reports:  # the program itself failed before any case
        return reject(_reason(reports[-1][0], res), tests_passed=0, tests_total=n)
    same = _same_call if fmt == "calls" else _same_stdout
    passed, first = 0, None
    for i, want in enumerate(outputs):
        status, data = reports.get(i, ("", ""))
        reason = _reason(status, res) if status != "ok" else None if same(data, want, **match) else "wrong_answer"
        passed += reason is None
        first = first or reason
    scores = {"tests_passed": passed, "tests_total": n}
    return accept(**scores) if first is None else reject(first, **scores)


def _reason(status: str, res: sandbox.Result) -> str:
    return status if status in _REASONS else _lost(res)


def _lost(res: sandbox.Result) -> str:
    """Why a run ended without the report it owed. Where two could be said, the one that is a fact about the
    program wins over a clock: output_limit (it wrote too much), memory_limit (it died of MemoryError), timeout
    (it was still running at the deadline, or its CPU time ran out), runtime_error (it exited or died before the
    tests finished)."""
    if res.output_exceeded:
        return "output_limit"
    if res.memory_exceeded:
        return "memory_limit"
    if res.timed_out:
        return "timeout"
    return "runtime_error"


def call_match(ref: dict) -> dict:
    """How a function-call record compares answers (`_same_call`'s options), from its optional fields: `atol`, the
    absolute error a float answer may have, and `rtol`, the error relative to the expected value (with both, either
    suffices; with one, it alone; with neither, FLOAT_RTOL or FLOAT_ATOL), and `wrapped_outputs`. A bad value raises
    ValueError naming the field."""
    for key in ("atol", "rtol"):
        v = ref.get(key)
        if v is not None and not (type(v) in (int, float) and 0 <= v < math.inf):
            raise ValueError(f"reference: {key} must be a number >= 0 (the task's float tolerance), got {v!r}")
    unwrap = ref.get("wrapped_outputs", False)
    if type(unwrap) is not bool:
        raise ValueError(f"reference: wrapped_outputs must be true or false, got {unwrap!r}")
    if ref.get("atol") is None and ref.get("rtol") is None:
        return {"rtol": FLOAT_RTOL, "atol": FLOAT_ATOL, "unwrap": unwrap}
    return {"rtol": float(ref.get("rtol") or 0), "atol": float(ref.get("atol") or 0), "unwrap": unwrap}


def _same_call(data: str, want, rtol: float = FLOAT_RTOL, atol: float = FLOAT_ATOL, unwrap: bool = False) -> bool:
    """The reported JSON value against the expected one, exactly: see `_equal`. With `unwrap` (the record's
    wrapped_outputs), an expected [x] also takes x, but only a list of one element."""
    try:
        got = json.loads(data)
        want = json.loads(json.dumps(want))  # tuples in a Python-built reference compare as the lists JSON gives
        if _equal(got, want, rtol, atol):
            return True
        return unwrap and type(want) is list and len(want) == 1 and _equal(got, want[0], rtol, atol)
    except (ValueError, TypeError, RecursionError, OverflowError):  # nested too deep, too large: wrong
        return False


def _equal(got, want, rtol: float, atol: float) -> bool:
    """== without Python's loose corners: True is not 1, an int answer is its exact value (2.0 passes for 2, not
    2.0000001), and a float answer is within atol of the expected, or within rtol of it relatively."""
    if type(got) is bool or type(want) is bool:
        return type(got) is type(want) and got == want
    if type(got) in (int, float) and type(want) in (int, float):
        if type(want) is int or got == want:  # exact, whatever the size (an inf for an inf too)
            return got == want
        try:
            return abs(float(got) - want) <= max(atol, rtol * abs(want))
        except OverflowError:  # an int too large for a float: no finite expected value is that far off
            return False
    if type(got) is not type(want):
        return False
    if type(want) is list:
        return len(got) == len(want) and all(_equal(g, w, rtol, atol) for g, w in zip(got, want, strict=True))
    if type(want) is dict:
        return got.keys() == want.keys() and all(_equal(got[k], want[k], rtol, atol) for k in want)
    return got == want


def _same_stdout(data: str, want) -> bool:
    text = want if isinstance(want, str) else "\n".join(map(str, want))
    return data == hashlib.sha256(normalize(text).encode()).hexdigest()


def _harness(code: str, job: dict, limits: Limits) -> tuple[sandbox.Result, dict[int, tuple[str, str]]]:
    """Run the harness on `code`; its reports by case, only those that carry this run's nonce."""
    nonce = secrets.token_hex(16)
    secret = marshal.dumps({**job, "nonce": nonce})
    files = {"solution.py": code, "main.pyc": _compiled(_harness_source())}
    res = sandbox.run(files=files, secret=secret, limits=limits)
    return res, _reports(res.stdout, nonce)


def _reports(stdout: str, nonce: str) -> dict[int, tuple[str, str]]:
    """The harness's reports by case: only lines that carry the nonce, the first for each case. A case number of
    more than 9 digits is no case (int() of 5,000 digits would raise)."""
    reports: dict[int, tuple[str, str]] = {}
    for m in re.finditer(rf"^{nonce} (-?\d{{1,9}}) (\w+) (.*)$", stdout, re.M):
        reports.setdefault(int(m[1]), (m[2], m[3]))
    return reports


@cache
def _harness_source() -> str:
    return Path(__file__).with_name("code_harness.py").read_text()


@cache
def _compiled(source: str) -> bytes:
    """The harness as code, for the sandbox's interpreter (this one's base interpreter: the same marshal format)."""
    return marshal.dumps(compile(source, f"{sandbox.BOX}/main.py", "exec", dont_inherit=True))
