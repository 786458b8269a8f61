"""`factory audit`: the second opinion on its own, then audits of stores made by replaying a real demo run's
completions: through the real verifier (the two agree), through a verifier broken to accept everything (the audit
must show false positives) and one broken to reject a class of right answers (false negatives); labels; the report
and the dataset card."""

from __future__ import annotations

import json
import os

import pytest
from conftest import DEMO_RECORDING, DEMO_SETTINGS, REPLAY, ROOT, rows, run_cli

from factory import audit
from factory.store import StoreReader
from filters.second_opinion import final_answer, same

BROKEN = '''
from filters.base import Verdict
from filters.verify import verify


def always_accept(c):
    return Verdict(True)


def reject_one_digit(c):
    """The real verifier, except that a right answer whose reference has one digit is a wrong_answer."""
    v = verify(c)
    if v.accepted and len(str(c.reference.get("answer")).lstrip("-")) == 1:
        return Verdict(False, "wrong_answer")
    return v
'''


@pytest.mark.parametrize(
    ("gold", "answer", "want"),
    [
        ("3250", "3,250", True),
        ("3,250", "3250", True),
        ("3{,}250", "3250", True),
        ("-4", "-4", True),
        ("4", "-4", False),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{3}{4}", "3/4", True),
        ("12.5\\%", "0.125", True),
        ("12.5\\%", "12.5", True),
        ("(1, 2)", "(1,2)", True),
        ("(1, 2)", "(2, 1)", False),
        ("(1, 2)", "(1, 2, 3)", False),
        ("\\text{yes}", "yes", True),
        ("7", "7.", True),
        ("\\sqrt{2}", "2^{1/2}", None),  # not a plain number: it cannot tell
        ("3,25", "325", None),  # not a thousands run
        ("x+1", "1+x", None),
    ],
)
def test_the_second_opinion_decides_only_what_it_reads_plainly(gold, answer, want):
    assert same(gold, answer) is want


def test_the_second_opinion_reads_the_answer_after_the_reasoning():
    assert final_answer("<think>maybe \\boxed{3}</think>So \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert final_answer("<think>x = 9</think>The answer is 12.") == "12"
    assert final_answer("1 + 5 = 6") == "6"
    assert final_answer("She makes 9 * 2 = $<<9*2=18>>18 a day.\nA: 18") == "18"  # GSM8K's solutions
    assert final_answer("3 + 4 = <<3+4=7>>7\n#### 7") == "7"
    assert final_answer("it is 3 then 8") == "8"
    assert final_answer("<think>42</think>no idea") is None


def _store(tmp_path, filters: str):
    """The demo run replayed with these filters, into a store of its own."""
    (tmp_path / "broken.py").write_text(BROKEN)
    db = tmp_path / "s.duckdb"
    settings = [x if not x.startswith("filters=") else f"filters={filters}" for x in DEMO_SETTINGS]
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))  # the stages' module
    res = run_cli("generate", str(ROOT / "recipes" / "arithmetic_demo.yaml"), "--db", str(db), *settings, *REPLAY,
                  PYTHONPATH=path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return db


def test_the_real_verifier_and_the_second_opinion_agree_on_the_demo_run(demo_store, tmp_path):
    db = tmp_path / "demo.duckdb"
    db.write_bytes(demo_store.read_bytes())
    a = audit.run(db, size=50, seed=1)
    want = rows(db, "SELECT count(*) FROM candidate_rows WHERE accepted OR reason = 'wrong_answer'")[0][0]
    assert sum(a.population.values()) == want and len(a.items) == want  # 50 a stratum: all of them
    est = a.estimates()
    assert est["accepted"]["rate"] == 0 and est["wrong_answer"]["rate"] == 0, a.disagreements()
    assert est["accepted"]["decided"] > 0 and est["accepted"]["high"] < 0.5
    with StoreReader(db) as store:
        again = store.latest_audit()
    assert again.audit_id == a.audit_id and again.estimates() == est  # kept in the store
    small = audit.run(db, size=2, seed=1)
    assert all(s["sampled"] <= 2 for s in small.strata())
    assert [i.candidate_id for i in audit.run(db, size=2, seed=1).items] == [i.candidate_id for i in small.items]


def test_a_verifier_that_accepts_everything_shows_in_the_audit(tmp_path):
    """Every candidate it let in that the real verifier had rejected as wrong (the recording says which) is a
    disagreement or undecided, and no other is a disagreement."""
    db = _store(tmp_path, "[format,broken:always_accept]")
    res = run_cli("audit", "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    recorded = {(r["prompt_id"], r["sample_index"]): r["reason"] for r in map(json.loads, DEMO_RECORDING.open())}
    ids = dict(rows(db, "SELECT candidate_id, (prompt_id, sample_index) FROM candidate_rows WHERE accepted"))
    wrong = {c for c, (p, i) in ids.items() if recorded[p, i] == "wrong_answer"}
    flagged = {i["candidate_id"] for i in out["items"] if i["truth"] is False}
    undecided = {i["candidate_id"] for i in out["items"] if i["truth"] is None}
    assert flagged <= wrong <= flagged | undecided and len(flagged) >= 5  # what it cannot read, it does not guess
    fp = out["estimates"]["accepted"]
    assert fp["population"] == len(ids) and fp["disagree"] == len(flagged) and fp["low"] > 0.1, fp


def test_a_verifier_that_rejects_a_class_of_right_answers_shows_false_negatives(tmp_path):
    db = _store(tmp_path, "[format,broken:reject_one_digit]")
    a = audit.run(db)
    fn = a.estimates()["wrong_answer"]
    assert fn["disagree"] >= 2 and fn["low"] > 0, fn
    missed = [i for i in a.disagreements() if i.verdict == "wrong_answer"]
    assert missed and all("reference '" in i.detail and len(i.detail.split("'")[3].lstrip("-")) == 1 for i in missed)


def test_labels_settle_disagreements_and_later_estimates_use_them(tmp_path):
    db = _store(tmp_path, "[format,broken:always_accept]")
    a = audit.run(db)
    before = a.estimates()["accepted"]
    first = a.disagreements()[0]
    res = run_cli("audit", "--db", str(db), "--label", f"{first.candidate_id}=right", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    after = json.loads(res.stdout)["estimates"]["accepted"]
    assert after["disagree"] == before["disagree"] - 1 and after["decided"] == before["decided"]
    res = run_cli("audit", "--db", str(tmp_path / "none.duckdb"))
    assert res.returncode != 0 and "no store at" in res.stderr and not (tmp_path / "none.duckdb").exists()
    res = run_cli("audit", "--db", str(db), "--run", "nope")
    assert res.returncode != 0 and "--run nope: no such run" in res.stderr
    res = run_cli("audit", "--db", str(db), "--label", "nope=right")
    assert res.returncode != 0 and "no candidate nope" in res.stderr
    res = run_cli("audit", "--db", str(db), "--label", f"{first.candidate_id}=maybe")
    assert res.returncode != 0 and "CANDIDATE_ID=right or CANDIDATE_ID=wrong" in res.stderr


def test_the_report_and_the_card_show_the_latest_audit(tmp_path):
    from factory import publish, report

    db = _store(tmp_path, "[format,broken:always_accept]")
    with StoreReader(db) as store:
        assert "Not audited" in report.render(store)
    audit.run(db)
    with StoreReader(db) as store:
        page = report.render(store)
        card = publish.card(store, "someone/demo", "mit", {"math": 3}, None)
    assert "<div id='audit'><b>Verifier audit</b>" in page and "False positives among accepts: " in page
    assert "## How far the verdicts can be trusted" in card
    line = next(x for x in card.splitlines() if x.startswith("- False positives among accepts"))
    assert "95% interval" in line and float(line.split(": ")[1].split("%")[0]) > 10


def test_runs_are_audited_side_by_side_with_their_verifier_versions(tmp_path):
    """Two runs of one store (the real verifier, then one that accepts everything): each audited on its own."""
    from importlib import metadata

    db = _store(tmp_path, "[format,verify]")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    settings = [x if not x.startswith("filters=") else "filters=[format,broken:always_accept]" for x in DEMO_SETTINGS]
    res = run_cli("generate", str(ROOT / "recipes" / "arithmetic_demo.yaml"), "--db", str(db), *settings, *REPLAY,
                  PYTHONPATH=path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("audit", "--db", str(db), "--by-run", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    real, broken = json.loads(res.stdout)
    assert real["verifiers"]["math-verify"] == metadata.version("math-verify")
    assert real["estimates"]["accepted"]["rate"] == 0 and broken["estimates"]["accepted"]["rate"] > 0.1
    res = run_cli("audit", "--db", str(db), "--by-run")
    assert res.returncode == 0 and "audits by run" in res.stdout and "math-verify" in res.stdout


def _judge(grade):
    """A scripted judge (tests/fakes.py) that grades by `grade(answer, reference)`; canaries score 1."""
    import re

    from fakes import ScriptedEngine

    from factory import judging
    from factory.recipe import Recipe
    from filters.judge import CANARIES

    def answer(user: str, k: int) -> str:
        question = re.search(r"\[Question\]\n(.*?)\n\n", user, re.S)[1]
        said = re.search(r"\[Answer\]\n(.*?)\n\nGrade the answer", user, re.S)[1].strip()
        reference = re.search(r"\[Reference\]\n(.*?)\n\n\[Question\]", user, re.S)
        if said in {c(question) for c in CANARIES.values()} or "7291" in said:
            return "Score: 1"
        return f"Score: {grade(said, reference[1] if reference else None)}"

    return judging.Judge(Recipe(), ScriptedEngine(answer), "scripted")


def test_a_judge_settles_what_the_rules_leave_undecided(tmp_path):
    """With a judge, the undecided items of a store whose verifier accepted everything are decided too (here by a
    scripted judge that reads whether the reference's number ends the answer); decided items keep the rule's say."""
    db = _store(tmp_path, "[format,broken:always_accept]")
    plain = audit.run(db)
    undecided = {i.candidate_id for i in plain.items if i.second is None}
    assert undecided, "the demo holds answers the second opinion cannot read: the judge has something to settle"
    j = _judge(lambda said, ref: 9 if ref and said.rstrip(". ").endswith(ref) else 2)
    judged = audit.run(db, judge=j)
    by_id = {i.candidate_id: i for i in judged.items}
    assert all(by_id[c].second is not None and "judge scripted:" in by_id[c].detail for c in undecided)
    assert all(i.second == p.second for p in plain.items if p.second is not None for i in [by_id[p.candidate_id]])
    assert judged.estimates()["accepted"]["undecided"] == 0 < plain.estimates()["accepted"]["undecided"]


def test_a_judge_that_passes_a_canary_is_refused_by_the_audit(tmp_path):
    from factory import judging

    db = _store(tmp_path, "[format,broken:always_accept]")
    before = rows(db, "SELECT count(*) FROM audits")
    fooled = _judge(lambda said, ref: 9)
    fooled.engine.answer = lambda user, k: "Score: 9"  # passes everything, canaries included
    with pytest.raises(judging.JudgeRefused, match="failed canary answers"):
        audit.run(db, judge=fooled)
    assert rows(db, "SELECT count(*) FROM audits") == before  # nothing kept from a refused audit
    fooled.cfg.on_canary = "flag"  # `--on-canary flag`: it goes on, and every opinion it gave says so
    a = audit.run(db, judge=fooled)
    asked = [i for i in a.items if "judge scripted" in i.detail]
    assert asked and all("FLAGGED" in i.detail and i.second is True for i in asked)


@pytest.mark.slow
def test_the_bundled_model_as_the_audits_judge_is_refused(tmp_path):
    """The store whose verifier accepted everything holds answers the rule-based opinion cannot read (see above):
    the judge is asked about those, after its canaries, which a 135M model fails."""
    db = _store(tmp_path, "[format,broken:always_accept]")
    assert any(i.second is None for i in audit.run(db, size=20).items), "nothing for the judge: the test is void"
    before = rows(db, "SELECT count(*) FROM audits")
    res = run_cli("audit", "--db", str(db), "--size", "20", "--judge", "smollm2-135m-instruct", timeout=1200)
    assert res.returncode != 0 and "failed canary answers that say nothing" in res.stderr, res.stderr[-3000:]
    assert "--on-canary flag" in res.stderr and rows(db, "SELECT count(*) FROM audits") == before
