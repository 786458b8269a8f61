"""The weak-test gate in a run (factory/checks.py): each code prompt's tests checked once and the result kept in the
store, weak prompts set aside (or sampled and flagged with verify.allow_weak_tests), prompts whose tests fail their
reference solution set aside; the counts in `factory stats`, the report and the dataset card."""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml
from conftest import ROOT, rows, run_cli

from factory import checks, publish, report
from factory.errors import FactoryError
from factory.recipe import load
from factory.run import prepare, run_recipe
from factory.store import StoreReader, StoreWriter
from filters import sandbox


def _code(name: str, doc: str, asserts: list[str], solution: str) -> dict:
    test = "def check(candidate):\n" + "".join(f"    assert {a}\n" for a in asserts)
    return {"prompt": f'def {name}(x):\n    """{doc}"""\n', "test": test, "entry_point": name, "solution": solution}


WEAK = _code("inc", "x + 1.\n    >>> inc(1)\n    2\n    ", ["candidate(1) == 2"], "def inc(x):\n    return x + 1\n")
SOUND = _code("dbl", "2x.", ["candidate(1) == 2", "candidate(5) == 10"], "def dbl(x):\n    return 2 * x\n")
BROKEN = _code("neg", "-x.", ["candidate(2) == -2", "candidate(0) == 0"], "def neg(x):\n    return x\n")  # wrong


@pytest.fixture
def job(tmp_path):
    """A recipe over the three prompts, whose replayed answer to each is its (right) solution."""
    src, rec = tmp_path / "prompts.jsonl", tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in (WEAK, SOUND, BROKEN)))
    right = {"inc": WEAK["solution"], "dbl": SOUND["solution"], "neg": "def neg(x):\n    return -x\n"}
    rec.write_text("".join(json.dumps({"prompt": p["prompt"], "completion": f"```python\n{right[p['entry_point']]}```"})
                           + "\n" for p in (WEAK, SOUND, BROKEN)))  # fmt: skip
    recipe = {"source": {"kind": "jsonl", "path": str(src), "task": "code", "fields": {"solution": "solution"}},
              "engine": {"kind": "replay", "replay": str(rec)}, "prompt": {"think": False},
              "rejection": {"accept_per_prompt": 1, "max_samples": 1, "round_size": 1}, "verify": {"workers": 1},
              "filters": ["verify"]}  # fmt: skip
    path = tmp_path / "code.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def sandbox_runs(monkeypatch):
    """Sandbox runs made in this process (the gate's; the verification workers are processes of their own)."""
    made, real = [], sandbox.run
    monkeypatch.setattr(sandbox, "run", lambda *a, **k: made.append(1) or real(*a, **k))
    return made


def _generate(path, db, *overrides):
    r, prompts = prepare(path, None, list(overrides))
    return run_recipe(r, prompts, db)


def _by_entry(db) -> dict:
    sql = "SELECT p.prompt, d.reason, d.scores FROM prompt_drops d JOIN prompts p USING (prompt_id)"
    return {prompt.split("(")[0][4:]: (reason, json.loads(scores)) for prompt, reason, scores in rows(db, sql)}


def test_weak_and_broken_prompts_are_set_aside_and_checked_once(job, tmp_path, sandbox_runs):
    db = tmp_path / "f.duckdb"
    tally, _, _ = _generate(job, db)
    first = len(sandbox_runs)
    assert tally.prompts_set_aside == 2 and tally.examples == 1
    drops = _by_entry(db)
    assert drops["inc"][0] == "weak_tests" and drops["inc"][1]["weak_tests"] == "constant(2)"
    assert drops["neg"][0] == "bad_reference" and set(drops) == {"inc", "neg"}
    sampled = rows(db, "SELECT p.prompt[5:7], c.accepted FROM candidates c JOIN prompts p USING (prompt_id)")
    assert sampled == [("dbl", True)]
    sql = "SELECT count(*), count(weak_tests), count(*) FILTER (bad_reference) FROM prompt_checks"
    assert rows(db, sql) == [(3, 1, 1)] and first >= 3 * 5  # a reference and 4 trivial programs at least, each
    _generate(job, db)  # the same run again: done already
    _generate(job, db, "sampling.seed=1")  # another run of the same prompts: their checks are in the store
    assert len(sandbox_runs) == first
    assert rows(db, "SELECT count(*) FROM prompt_checks") == [(3,)]


def test_a_new_battery_checks_again(job, tmp_path, sandbox_runs, monkeypatch):
    db = tmp_path / "f.duckdb"
    r, prompts = prepare(job, None, [])
    with StoreWriter(db) as store:
        checks.run_checks(store, r, prompts)
        first = len(sandbox_runs)
        assert checks.run_checks(store, r, prompts).keys() == {p.prompt_id for p in prompts}
        assert len(sandbox_runs) == first > 0
        monkeypatch.setattr(checks, "BATTERY", "next")
        checks.run_checks(store, r, prompts)
        assert len(sandbox_runs) == 2 * first


def test_allow_weak_tests_samples_them_and_flags_their_candidates(job, tmp_path):
    db = tmp_path / "f.duckdb"
    tally, _, _ = _generate(job, db, "verify.allow_weak_tests=true")
    assert tally.prompts_set_aside == 1 and set(_by_entry(db)) == {"neg"}  # a broken reference is set aside anyway
    got = rows(db, "SELECT p.prompt[5:7], c.accepted, c.scores FROM candidates c JOIN prompts p USING (prompt_id)")
    flags = {name: (ok, json.loads(s).get("weak_tests")) for name, ok, s in got}
    assert flags == {"inc": (True, "constant(2)"), "dbl": (True, None)}


def test_stats_report_and_card_count_the_checks(job, tmp_path):
    db = tmp_path / "f.duckdb"
    _generate(job, db)
    with StoreReader(db) as store:
        s = store.stats()
        assert s["test_checks"] == {"checked": 3, "weak_tests": 1, "bad_reference": 1, "by_program": {"constant": 1}}
        assert s["reasons"]["prompt_weak_tests"] == 1 and s["reasons"]["prompt_bad_reference"] == 1
        page = report.render(store)
        card = publish.card(store, "me/code", "mit", {"code": 1}, None)
    cells = "<td>3</td><td>1</td><td>constant 1</td><td>1</td>"
    assert "<table id='test-checks'>" in page and cells in page
    assert "### Code prompts' tests" in card and "3 prompts checked, 1 with tests" in card
    assert "(passed by: constant 1), 1 whose tests fail" in card
    out = run_cli("stats", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "code prompts' tests" in out.stdout and "constant 1" in out.stdout
    assert json.loads(run_cli("stats", "--db", str(db), "--json").stdout)["test_checks"]["weak_tests"] == 1


def test_a_store_made_before_the_checks_table_opens(tmp_path):
    path = tmp_path / "old.duckdb"
    StoreWriter(path).close()
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE prompt_checks")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    con.close()
    with StoreReader(path) as reader:
        assert reader.stats()["test_checks"] == {"checked": 0, "weak_tests": 0, "bad_reference": 0, "by_program": {}}
    with StoreWriter(path) as store:  # its next writer adds the table
        assert store.checks(["p"], "1") == {}
        assert store.query("SELECT value FROM meta WHERE key = 'schema'")[1] == [("6",)]


def test_allow_weak_tests_is_validated_and_off_by_default(tmp_path, job):
    bad = tmp_path / "bad.yaml"
    bad.write_text(job.read_text() + "\n")
    with pytest.raises(FactoryError, match=r"verify.allow_weak_tests: 'maybe' is not true/false"):
        load(bad, ["verify.allow_weak_tests=maybe"])
    off, on = load(job), load(job, ["verify.allow_weak_tests=true"])
    assert off.verify.allow_weak_tests is False and on.verify.allow_weak_tests is True
    assert off.hash() != on.hash()  # a different keep policy: a run of its own


def test_a_recipe_hashed_before_the_setting_keeps_its_hash():
    """Its run resumes: the default is left out of the hash (the demo recipe's hash before the setting existed)."""
    assert load(ROOT / "recipes" / "arithmetic_demo.yaml").hash() == "f1d765dd74943679"
