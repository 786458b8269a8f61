"""Weak tests: a code prompt's tests run once against trivial programs; tests that accept one reward nothing.

A pass is a reward only if the tests can fail. So before a code prompt's answers are trusted, its tests are run
(through `verify_code`, in the sandbox, like any answer) against a battery of programs made from the signature and
the examples alone, none of which solves anything:

- none: returns None;
- empty(V): the empty value of each type the expected outputs have ([], "", 0, 0.0, False, {}, ()), from the tests'
  own expected values, the prompt's examples and the return annotation; for stdin/stdout, prints nothing, or 0;
- constant(V): the most common expected value, returned (or printed) whatever the input;
- nan: float("nan") (printed: nan);
- echo: the first argument returned; for stdin/stdout, stdin copied to stdout;
- lookup: the prompt's own examples replayed from a table of inputs to outputs (the docstring's `>>> f(1)` / `2`
  and `f(1) == 2`, `f(1) ➞ 2`, `f(1) returns 2` lines; for cases, those whose input and output the prompt shows);
- order: the same examples' outputs returned in sequence, whatever is asked (the candidate process lives across the
  calls of one run; a stdin/stdout program keeps its count in a file, which the sandbox's /tmp holds across cases).
  Only where the outputs carry ORDER_BITS (a True/False 1 bit, a small integer 3, any other value 8): six booleans
  that happen to be the tests' own in the same order (HumanEval/154) are chance, not a replay.

- shaped: where the source has a reference solution, that solution with every answer's values changed and its
  types and lengths kept (`shaped`): tests that check only types and lengths pass it.

A prompt whose tests accept any of them is weak (`Check.weak_tests` names the first). Where the source has a
reference solution (HumanEval's canonical one), the tests must pass it, else the prompt is `bad_reference`.
`programs` is pure (a reference in, (name, program) pairs out); `check` runs them. benchmarks/weak_tests.py
measures the battery on HumanEval.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field

from filters.base import Candidate
from filters.code import has_tests, verify_code
from filters.sandbox import Limits

BATTERY = "2"  # the battery's version: a store keeps results under it, and a new one checks every prompt again
CLASSES = ("none", "empty", "constant", "nan", "echo", "lookup", "order")
SOLUTION_CLASSES = ("shaped",)  # made from the source's reference solution, where it has one
_EMPTY = {list: [], str: "", int: 0, float: 0.0, bool: False, dict: {}, tuple: ()}
_ANNOTATED = {"list": [], "str": "", "int": 0, "float": 0.0, "bool": False, "dict": {}, "tuple": ()}
_DEFAULT_EMPTY = ([], "", 0)  # nothing says what the function returns
# what separates an example's call from its output on one line: ==>, =>, ->, ➞, ==, =, (should) return(s), #
_SEP = re.compile(r"\s*(?:#\s*)?(?:==>|=>|->|➞|==|=|(?:should\s+)?returns?)\s*", re.I)
ORDER_BITS = 16  # order is tried where chance would give its outputs in that order once in 65,536 suites at most
_WINDOW = 80  # a case counts as shown when its output follows its input within this many characters (no spaces)


@dataclass
class Check:
    """What the battery found for one prompt."""

    weak_tests: str | None = None  # the first trivial program the tests accepted; None: none did
    passed: list[str] = field(default_factory=list)  # every one they accepted
    bad_reference: bool | None = None  # the reference solution fails the tests; None: the source has none
    runs: int = 0  # sandbox runs it took
    detail: str = ""  # why the tests themselves do not run, where they do not


def kind(name: str) -> str:
    """A program's class: `constant(True)` is a constant."""
    return name.split("(", 1)[0]


def programs(prompt: str, ref: dict) -> list[tuple[str, str]]:
    """The trivial programs for a reference's format, each a Python program as an answer's code block holds it."""
    if ref.get("fn_name") or str(ref.get("test") or "").strip():
        return _function_programs(prompt, ref)
    return _stdio_programs(prompt, ref)


def check(prompt: str, ref: dict, solution: str | None = None, limits: Limits | None = None) -> Check:
    """Run the battery (and the reference solution, if any) against the prompt's tests."""
    out = Check()
    if not has_tests(ref):
        return out
    try:
        if solution is not None:
            out.bad_reference = not _passes(solution, ref, limits)
            out.runs += 1
        more = [("shaped", shaped(solution, ref))] if solution is not None and not out.bad_reference else []
        for name, program in programs(prompt, ref) + [(n, p) for n, p in more if p]:
            out.runs += 1
            if _passes(program, ref, limits):
                out.passed.append(name)
    except _Broken as e:  # the tests themselves do not run: nothing they say counts
        out.bad_reference, out.detail = True, str(e)[:300]
    out.weak_tests = out.passed[0] if out.passed else None
    return out


class _Broken(Exception):
    pass


def _passes(program: str, ref: dict, limits: Limits | None) -> bool:
    try:
        v = verify_code(Candidate(f"```python\n{program}\n```", "code", ref, think=False), limits)
    except ValueError as e:  # a record whose cases do not pair up, or (before bad_reference verdicts) broken tests
        raise _Broken(str(e)) from None
    if v.reason == "bad_reference":  # every answer gets it: the record is broken
        raise _Broken(str(v.scores.get("error") or "the tests do not run"))
    return v.accepted


# --- function calls: HumanEval's check(candidate), MBPP-style asserts, {fn_name, inputs, outputs} ---


def _function_programs(prompt: str, ref: dict) -> list[tuple[str, str]]:
    names = _names(ref)
    shown = _examples(prompt, names) if not ref.get("fn_name") else _shown_cases(prompt, ref)
    wanted = _expected(ref, names) + [v for _, v in shown]
    out = [("none", "None")]
    empties = [_EMPTY[type(v)] for v in wanted if type(v) in _EMPTY] or _annotated(ref, names) or _DEFAULT_EMPTY
    out += [(f"empty({e!r})", repr(e)) for e in _distinct(empties)]
    if wanted:
        common = Counter(_key(v) for v in wanted).most_common(1)[0][0]
        value = next(v for v in wanted if _key(v) == common)
        out.append((f"constant({_short(value)})", repr(value)))
    out += [("nan", 'float("nan")'), ("echo", "args[0] if args else None")]
    body = {name: f"def _trivial(*args, **kwargs):\n    return {expr}\n" for name, expr in out}
    if shown:
        table = {repr(tuple(args)): value for args, value in shown}
        body["lookup"] = f"_TABLE = {table!r}\n\ndef _trivial(*args, **kwargs):\n    return _TABLE.get(repr(args))\n"
    if _bits([v for _, v in shown]) >= ORDER_BITS:
        body["order"] = (
            f"_OUT = {[v for _, v in shown]!r}\n_AT = [0]\n\ndef _trivial(*args, **kwargs):\n"
            "    _AT[0] += 1\n    return _OUT[_AT[0] - 1] if _AT[0] <= len(_OUT) else None\n"
        )
    bind = "".join(f"{n} = _trivial\n" for n in names)
    return _unique([(name, f"{code}\n{bind}") for name, code in body.items()])


_SHAPED = """

def _perturb(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1.5 if isinstance(v, float) else v + 1
    if isinstance(v, str):
        return "".join(chr(ord(c) + 1) if c.isalnum() else c for c in v)
    if isinstance(v, (list, tuple)):
        return type(v)(_perturb(x) for x in v)
    if isinstance(v, dict):
        return {k: _perturb(x) for k, x in v.items()}
    return v


_real = NAME


def NAME(*args, **kwargs):
    got = _real(*args, **kwargs)
    if got is None:  # an in-place API: its arguments are its answer
        changed = False
        for a in args:
            if isinstance(a, list) and a:
                a[:], changed = _perturb(a), True
        if not changed:
            raise RuntimeError("nothing to perturb")
        return got
    new = _perturb(got)
    if new == got:
        raise RuntimeError("nothing to perturb")  # an answer this leaves alone ([], "") proves nothing
    return new
"""


def shaped(solution: str, ref: dict) -> str | None:
    """The reference solution with every answer's values changed and its shape kept (ints + 1, floats + 1.5, each
    letter or digit the next character, booleans negated, lists, tuples and dicts element by element): right type,
    right length, wrong values. Tests that check only types and lengths pass it. Where an answer is left as it was
    (nothing in it to change), the call raises instead: a pass must come from a changed answer."""
    names = _names(ref)
    if len(names) != 1 or not names[0].isidentifier():
        return None
    return solution + _SHAPED.replace("NAME", names[0])


def _names(ref: dict) -> list[str]:
    """The functions the tests call: the entry point, fn_name, or (MBPP-style asserts) the names the test code calls
    that it does not define."""
    if ref.get("fn_name") or ref.get("entry_point"):
        return [ref.get("fn_name") or ref["entry_point"]]
    try:
        tree = ast.parse(ref["test"])
    except (SyntaxError, ValueError):
        return []
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return sorted(called - defined - set(dir(builtins)))


def _expected(ref: dict, names: list[str]) -> list:
    """The values the tests expect: fn_name outputs, or what HumanEval-style asserts compare a call with."""
    if ref.get("fn_name"):  # a list of one that the record says stands for its element (APPS), both ways
        outputs = ref.get("outputs") or []
        return outputs + [v[0] for v in outputs if ref.get("wrapped_outputs") and type(v) is list and len(v) == 1]
    try:
        tree = ast.parse(ref["test"])
    except (SyntaxError, ValueError):
        return []
    calls = {"candidate", *names}
    is_call = lambda n: isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in calls  # noqa: E731
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.Is)):
            left, right = node.left, node.comparators[0]
            other = right if is_call(left) else left if is_call(right) else None
            out += _literal(other) if other is not None else []
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and is_call(node.left):
            out += _literal(node.right)  # abs(candidate(x) - y) < tol
        elif isinstance(node, ast.Assert) and is_call(node.test):
            out.append(True)
        elif isinstance(node, ast.Assert) and isinstance(node.test, ast.UnaryOp) and is_call(node.test.operand):
            out.append(False)
    return out


def _literal(node: ast.AST) -> list:
    try:
        return [ast.literal_eval(node)]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []


def _examples(prompt: str, names: list[str]) -> list[tuple[tuple, object]]:
    """(args, output) of the examples the prompt shows: `>>> f(x)` with its output on the next line, or a line
    `f(x) <sep> output`, both literals."""
    out, lines = [], prompt.splitlines()
    for i, line in enumerate(lines):
        for name in names:
            at = line.find(f"{name}(")
            if at < 0 or line.lstrip().startswith("def "):
                continue
            args, rest = _call_args(line[at + len(name) :])
            if args is None:
                continue
            if line.lstrip().startswith(">>>") and i + 1 < len(lines):
                value = _value(lines[i + 1].strip())
            else:
                m = _SEP.match(rest)
                value = _value(rest[m.end() :].strip()) if m and m.end() else None
            if value is not None:
                out.append((args, value[0]))
    return out


def _call_args(text: str) -> tuple[tuple | None, str]:
    """`(1, [2])...` -> ((1, [2]), what follows the closing parenthesis)."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args = _value(text[: i + 1][:-1] + ",)") if text[1:i].strip() else ((),)
                return (args[0] if args and type(args[0]) is tuple else None), text[i + 1 :]
    return None, ""


def _value(text: str) -> tuple | None:
    """(value,) of the longest literal that starts `text` (an example's output with a comment or a full stop after
    it), JavaScript's true/false read as Python's; None where none does."""
    text = text[:-1] if text.endswith(".") else text  # "should return 16." is 16, not 16.0
    text = {"true": "True", "false": "False"}.get(text, text)
    for end in range(len(text), 0, -1):
        if end < len(text) and text[end] not in " .#,;(":
            continue
        try:
            return (ast.literal_eval(text[:end].strip()),)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return None


def _annotated(ref: dict, names: list[str]) -> list:
    """The empty value of the entry point's return annotation in the prompt's code (`-> List[int]`: [])."""
    try:
        tree = ast.parse(ref.get("prefix") or "")
    except (SyntaxError, ValueError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in names and node.returns is not None:
            text = ast.unparse(node.returns).lower().removeprefix("typing.").removeprefix("optional[")
            return [v for k, v in _ANNOTATED.items() if text.startswith(k)][:1]
    return []


# --- stdin/stdout cases ---


def _stdio_programs(prompt: str, ref: dict) -> list[tuple[str, str]]:
    outputs = [_text(y) for y in ref.get("outputs") or []]
    out = [("empty('')", "pass\n")]
    if outputs and all(re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", y) for y in outputs):
        out.append(("empty('0')", "print(0)\n"))
    if outputs:
        common = Counter(outputs).most_common(1)[0][0]
        out.append((f"constant({_short(common)})", f"import sys\nsys.stdout.write({common!r})\n"))
    out += [("nan", "print('nan')\n"), ("echo", "import sys\nsys.stdout.write(sys.stdin.read())\n")]
    shown = [(" ".join(_text(x).split()), _text(y)) for x, y in _shown_cases(prompt, ref)]
    if shown:
        out.append(
            (
                "lookup",
                f"import sys\n_TABLE = {dict(shown)!r}\n"
                "sys.stdout.write(_TABLE.get(' '.join(sys.stdin.read().split()), ''))\n",
            )
        )
    if _bits([y for _, y in shown]) >= ORDER_BITS:
        count = f".trivial-{secrets.token_hex(4)}"  # the count of cases run so far, in the sandbox's /tmp
        out.append(
            (
                "order",
                f"import os, sys\n_OUT = {[y for _, y in shown]!r}\n"
                f"path = os.path.join(os.environ.get('TMPDIR', '/tmp'), {count!r})\n"
                "try:\n    with open(path) as f:\n        at = int(f.read())\n"
                "except (OSError, ValueError):\n    at = 0\n"
                "with open(path, 'w') as f:\n    f.write(str(at + 1))\n"
                "sys.stdout.write(_OUT[at] if at < len(_OUT) else '')\n",
            )
        )
    return _unique(out)


def _shown_cases(prompt: str, ref: dict) -> list[tuple]:
    """The cases of a {inputs, outputs} reference that the prompt shows: its input, then its output within
    _WINDOW characters, spaces aside (as APPS and LeetCode statements show their examples)."""
    flat = re.sub(r"\s+", "", prompt)
    out = []
    for x, y in zip(ref.get("inputs") or [], ref.get("outputs") or [], strict=False):
        if ref.get("fn_name"):
            args = x if type(x) is list else [x]
            ins, outs = [_forms(a) for a in args], _forms(y)
            if ref.get("wrapped_outputs") and type(y) is list and len(y) == 1:
                outs += _forms(y[0])
        else:
            ins, outs = [[re.sub(r"\s+", "", _text(x))]], [re.sub(r"\s+", "", _text(y))]
        if _follows(flat, ins, outs):
            out.append((args, y) if ref.get("fn_name") else (x, y))
    return out


def _forms(value) -> list[str]:
    """How a prompt may write a value, spaces aside: as JSON and as Python."""
    return list(dict.fromkeys(re.sub(r"\s+", "", s) for s in (json.dumps(value), repr(value))))


def _follows(flat: str, ins: list[list[str]], outs: list[str]) -> bool:
    """Each input in turn, then the output within _WINDOW characters of the last."""
    at = 0
    for forms in ins:
        hits = [(flat.find(f, at), f) for f in forms if f]
        hits = [(i, f) for i, f in hits if i >= 0]
        if not hits:
            return False
        i, f = min(hits)
        at = i + len(f)
    return any(flat.find(o, at, at + _WINDOW + len(o)) >= 0 for o in outs if o)


# --- helpers ---


def _bits(values: list) -> int:
    """About how much a sequence of outputs says: what chance would need to give it in that order."""
    return sum(_bits_of(v) for v in values)


def _bits_of(value) -> int:
    word = value.strip().lower() if isinstance(value, str) else None
    if type(value) is bool or value is None or word in ("yes", "no", "true", "false"):
        return 1
    if type(value) is int and -10 <= value <= 10 or word is not None and re.fullmatch(r"-?\d", word):
        return 3
    return 8


def _text(value) -> str:
    return value if isinstance(value, str) else "\n".join(map(str, value))


def _key(value) -> str:
    return f"{type(value).__name__}:{value!r}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _distinct(values: list) -> list:
    return list({_key(v): v for v in values}.values())


def _unique(programs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The battery without a program twice (a constant that is the empty value): the first name is kept."""
    seen, out = set(), []
    for name, program in programs:
        if program not in seen:
            seen.add(program)
            out.append((name, program))
    return out
