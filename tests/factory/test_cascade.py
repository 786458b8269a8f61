"""The judge cascade (`verify.cascade: judge`): only the verify verdicts a second opinion disputes go to the judge,
which rescues a reject (`rescued_by_judge`) or overrules an accept (`overruled_by_judge`); and the judge's canaries
graded again every `judge.recheck_every` answers, mid-run. Control flow on a scripted model and judge, with real
workers and a real store here; the bundled model as the cascade's judge on vLLM in `test_a_real_judge_...`."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, rows, run_cli
from fakes import ScriptedEngine

from factory import judging
from factory import recipe as recipes
from factory.errors import FactoryError
from factory.sampler import Job, sample
from factory.sources import make
from factory.workers import VerifyPool
from filters.base import Candidate, Verdict
from filters.cascade import disputed
from filters.judge import CANARIES
from filters.registry import Settings, run_chain

NUMBER = re.compile(r"Question (\d+)")
TWO = "#### 7\nThe answer is 8"  # GSM8K's mark says 7, the sentence after it 8: the two checks read different answers
# reference, answer, the verify stage's verdict, whether the second opinion disputes it
CASES = [
    ("7", TWO, "wrong_answer", True),  # verify reads 8; the second opinion 7: a rescue to ask for
    ("8", TWO, None, True),  # verify reads 8, right; the second opinion 7, wrong: an accept to question
    ("(1, 2)", "\\boxed{[1, 2]}", "wrong_answer", True),  # a tuple written as a list
    ("9", "\\boxed{9}", None, False),  # both right
    ("5", "\\boxed{4}", "wrong_answer", False),  # both wrong
    ("\\sqrt{2}", "\\boxed{2^{1/2}}", None, False),  # the second opinion cannot tell: the rule stands
    ("5", "I give up.", "wrong_answer", False),  # no answer: the second opinion agrees it is wrong
]


@pytest.mark.parametrize(("ref", "text", "reason", "asked"), CASES)
def test_only_disputed_verdicts_are_sent_to_the_judge(ref, text, reason, asked):
    c = Candidate(text, "math", {"answer": ref}, think=False)
    v = run_chain(c, ["format", "verify"], Settings(cascade=()))
    assert (v.accepted, v.reason) == (reason is None, reason)
    assert (v.scores.get("cascade") == "asked") == asked
    assert run_chain(c, ["format", "verify"]).scores.get("cascade") is None  # off unless the recipe says so


def test_a_listed_reason_always_goes_and_other_tasks_never():
    wrong = Candidate("\\boxed{4}", "math", {"answer": "5"}, think=False)
    assert disputed(wrong, Verdict(False, "wrong_answer"), ("wrong_answer",)).startswith("verify.cascade_reasons")
    assert disputed(wrong, Verdict(False, "wrong_answer"), ()) is None
    code = Candidate("def f(): return 1", "code", {"test": "assert f() == 2"}, think=False)
    assert disputed(code, Verdict(False, "wrong_answer"), ()) is None
    assert disputed(wrong, Verdict(False, "verify_timeout"), ()) is None


def test_a_disputed_reject_still_meets_the_later_stages():
    """The judge could rescue it only if every stage after verify passes it: one that fails keeps verify's reason
    and nothing goes to the judge."""
    c = Candidate("#### 7\nThe answer is 8" + " ok" * 400, "math", {"answer": "7"}, think=False)
    v = run_chain(c, ["format", "verify", "readability"], Settings(cascade=()))
    assert (v.accepted, v.reason, v.scores.get("cascade")) == (False, "wrong_answer", None)
    assert not run_chain(c, ["readability"]).accepted  # the stage after verify is what rejects it


@pytest.mark.parametrize(
    ("rule", "judge_score", "want"),
    [
        (Verdict(False, "wrong_answer", {"cascade": "asked"}), 9, (True, "rescued_by_judge")),
        (Verdict(False, "wrong_answer", {"cascade": "asked"}), 2, (False, "wrong_answer")),
        (Verdict(True, None, {"cascade": "asked"}), 2, (False, "overruled_by_judge")),
        (Verdict(True, None, {"cascade": "asked"}), 9, (True, None)),
        (Verdict(True, None, {}), 2, (False, "judge_low_score")),  # the judge as a filter: its verdict stands
    ],
)
def test_what_the_judge_makes_of_a_verdict(rule, judge_score, want):
    from filters.judge import JudgeConfig, verdict

    judged = verdict(JudgeConfig(), "scripted", f"Score: {judge_score}")
    out = judging.decide(rule, judged)
    assert (out.accepted, out.reason) == want and out.scores["judge_score"] == judge_score


def test_a_reply_with_no_score_leaves_the_rule_standing():
    from filters.judge import JudgeConfig, verdict

    judged = verdict(JudgeConfig(), "scripted", "It looks fine to me.")
    for rule in (Verdict(False, "wrong_answer", {"cascade": "asked"}), Verdict(True, None, {"cascade": "asked"})):
        out = judging.decide(rule, judged)
        assert (out.accepted, out.reason) == (rule.accepted, rule.reason)


# a run: the scripted model answers each prompt with its line of ANSWERS; the scripted judge grades by GRADES
PROMPTS = [make("cascade", "math", f"Question {i}: what is it?", {"answer": ref}) for i, (ref, *_) in enumerate(CASES)]
GRADES = {0: 9, 1: 2, 2: 3}  # rescue prompt 0's answer, overrule prompt 1's, leave prompt 2's rejected


def _script(fooled_from_check: int | None = None):
    """The model's answers, and a judge that grades the canaries honestly until its check number `fooled_from_check`
    (0: the one before the run, 1: the first made during it...), and passes them from then on. A check is graded
    whole, one prompt's canaries (`judge.canaries: 1`), so the count of canary questions says which check it is."""
    canaries = []

    def answer(user: str, k: int) -> str:
        if not user.startswith("Please act as an impartial judge"):
            return CASES[int(NUMBER.search(user)[1])][1]
        said = re.search(r"\[Answer\]\n(.*?)\n\nGrade the answer", user, re.S)[1].strip()
        if said not in {c[1] for c in CASES}:  # a canary
            canaries.append(user)
            fooled = fooled_from_check is not None and (len(canaries) - 1) // len(CANARIES) >= fooled_from_check
            return "Score: 9" if fooled else "Score: 1"
        return f"Score: {GRADES[int(NUMBER.search(user)[1])]}"

    return answer


def _recipe(**judge) -> recipes.Recipe:
    raw = {
        "source": {"kind": "jsonl", "path": "unused.jsonl"},
        "prompt": {"template": "{prompt}", "think": False},
        "rejection": {"accept_per_prompt": 1, "max_samples": 1, "round_size": 1},
        "filters": ["format", "verify"],
        "verify": {"cascade": "judge"},
        "judge": {"threshold": 7, **judge},
    }
    return recipes.parse(raw)


@pytest.fixture(scope="module")
def pool():
    with VerifyPool(1, timeout=20, settings=Settings(cascade=())) as p:
        p.wait_ready()
        yield p


def _sample(store, r, engine, pool, prompts=PROMPTS):
    """As `factory generate` runs it: the canaries graded before the run trusts the judge, then the sampling."""
    run = store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})
    judge = judging.Judge(r, engine, "scripted")
    store.set_canaries(run, judging.check_canaries(judge, prompts))
    return run, sample(Job(r, prompts, store, run), engine, pool, judge=judge)


def test_a_run_sends_the_judge_only_the_disputes_and_keeps_its_decisions(store, pool):
    r, engine = _recipe(), ScriptedEngine(_script())
    run, _ = _sample(store, r, engine, pool)
    answers = {text for _, text, *_ in CASES}
    judged = [u for u in engine.asked if u.startswith("Please act") and any(a in u for a in answers)]
    assert len(judged) == 3  # prompts 0, 1, 2: the others' verdicts were not disputed (the rest are canaries)
    got = {p: (a, r_) for p, a, r_ in store.query("SELECT prompt_id, accepted, reason FROM candidates")[1]}
    want = [(True, "rescued_by_judge"), (False, "overruled_by_judge"), (False, "wrong_answer"), (True, None),
            (False, "wrong_answer"), (True, None), (False, "wrong_answer")]  # fmt: skip
    assert [got[p.prompt_id] for p in PROMPTS] == want
    _, ex = store.query("SELECT prompt_id FROM examples")
    assert {p for (p,) in ex} == {PROMPTS[i].prompt_id for i in (0, 3, 5)}  # the rescued answer is trained on
    _, scored = store.query("SELECT prompt_id, scores FROM candidates WHERE scores->>'cascade' = 'asked'")
    assert {p for p, _ in scored} == {PROMPTS[i].prompt_id for i in (0, 1, 2)}
    assert all("judge_score" in json.loads(s) and json.loads(s)["cascade_why"] for _, s in scored)
    assert store.stats()["cascade"] == {"asked": 3, "rescued": 1, "overruled": 1}
    line = judging.cascade_line(store.stats()["cascade"])
    assert "sent the judge 3 verdicts" in line and "1 rescued" in line and "1 overruled" in line and "1 left" in line
    _, [(reasons,)] = store.query("SELECT count(*) FROM candidates WHERE accepted AND reason IS NOT NULL")
    assert reasons == 1  # the one accepted row with a reason is the rescue


def test_the_judge_is_checked_again_mid_run_and_refused_once_fooled(store, pool):
    """Canaries graded every 2 answers judged: the judge grades them honestly before the run and after the first 2,
    and passes them after the next 2 (a judge that drifts, or learnt the first check's answers): refused there."""
    r = _recipe(recheck_every=2, canaries=1)
    engine = ScriptedEngine(_script(fooled_from_check=2))
    prompts = PROMPTS[:3] + [make("cascade", "math", f"Question {i}: again?", {"answer": "7"}) for i in (0, 0)]
    with pytest.raises(judging.JudgeRefused, match="after 4 answers it judged failed canary answers"):
        _sample(store, r, engine, pool, prompts)
    _, [(raw,)] = store.query("SELECT canaries FROM runs")
    first = json.loads(raw)
    assert not judging.failed(first)
    checks = first["rechecks"]
    assert [c["after"] for c in checks] == [2, 4]
    assert not judging.failed(checks[0]) and judging.failed(checks[1])
    assert "FLAGGED at 1 (after 4 answers judged)" in judging.canary_line(raw)
    _, [(n,)] = store.query("SELECT count(*) FROM candidates")
    assert n < len(prompts)  # the run stopped short: rounds judged since the last commit are not kept


def test_a_flagged_judge_goes_on_and_its_rechecks_are_kept(store, pool):
    r = _recipe(recheck_every=1, canaries=1, on_canary="flag")
    engine = ScriptedEngine(_script(fooled_from_check=2))
    run, tally = _sample(store, r, engine, pool)
    assert tally.candidates == len(PROMPTS)
    _, [(raw,)] = store.query(f"SELECT canaries FROM runs WHERE run_id = '{run}'")
    checks = json.loads(raw)["rechecks"]
    assert [c["after"] for c in checks] == [1, 2, 3]
    assert [bool(judging.failed(c)) for c in checks] == [False, True, True]
    assert "graded again 3 times during the run, FLAGGED at 2 (after 2, 3 answers judged)" in judging.canary_line(raw)


def test_cascade_settings_are_checked_and_leave_a_recipes_hash_alone():
    base = {"source": {"kind": "jsonl", "path": "x.jsonl"}}
    with pytest.raises(FactoryError, match="verify.cascade: 'yes' must be judge or empty"):
        recipes.parse(base | {"verify": {"cascade": "yes"}})
    with pytest.raises(FactoryError, match=r"verify.cascade_reasons\[0\]: 'timeout' is not one of"):
        recipes.parse(base | {"verify": {"cascade": "judge", "cascade_reasons": ["timeout"]}})
    with pytest.raises(FactoryError, match="verify.cascade_reasons: set verify.cascade: judge too"):
        recipes.parse(base | {"verify": {"cascade_reasons": ["no_answer"]}})
    with pytest.raises(FactoryError, match="add verify to filters"):
        recipes.parse(base | {"verify": {"cascade": "judge"}, "filters": ["format"]})
    plain, rechecked = recipes.parse(base), recipes.parse(base | {"judge": {"recheck_every": 7}})
    assert plain.hash() == rechecked.hash() == recipes.Recipe(source=plain.source).hash()
    assert recipes.parse(base | {"verify": {"cascade": "judge"}}).hash() != plain.hash()  # it changes what is kept


@pytest.mark.slow
def test_a_real_judge_decides_the_cascades_questions(tmp_path):
    """The demo on vLLM with every wrong answer sent to the judge (the bundled 135M model, flagged by its canaries so
    the run goes on): each one asked carries the judge's grade, and its verdict follows it."""
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(ROOT / "recipes" / "arithmetic_demo.yaml"), "--db", str(db), "--limit", "3",
                  "--set", "rejection.max_samples=2", "--set", "rejection.round_size=2",
                  "--set", "verify.cascade=judge", "--set", "verify.cascade_reasons=[wrong_answer]",
                  "--set", "judge.on_canary=flag",
                  "--set", "judge.canaries=1", "--set", "judge.recheck_every=1", "--set", "judge.max_tokens=64",
                  timeout=1200)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    asked = rows(db, "SELECT accepted, reason, scores FROM candidates WHERE scores->>'cascade' = 'asked'")
    wrong = rows(db, "SELECT count(*) FROM candidates WHERE reason = 'wrong_answer' AND scores->>'cascade' IS NULL")
    assert asked and wrong == [(0,)], res.stdout  # every wrong answer went to the judge
    for accepted, reason, raw in asked:
        s = json.loads(raw)
        assert s["judge_model"] == "smollm2-135m-instruct" and isinstance(s["judge_reply"], str)
        graded = s.get("judge_score") is not None
        assert reason == ("rescued_by_judge" if graded and s["judge_score"] >= 7 else reason)
        assert accepted == (reason in (None, "rescued_by_judge"))
        assert reason in ("rescued_by_judge", "wrong_answer", None, "overruled_by_judge")
    [(raw,)] = rows(db, "SELECT canaries FROM runs")
    assert len(json.loads(raw)["rechecks"]) == len(asked)  # graded again after each answer judged
    stats = run_cli("stats", "--db", str(db))
    assert f"the judge cascade sent the judge {len(asked)} verdicts" in stats.stdout.replace("\n", " "), stats.stdout


def test_a_ray_worker_grades_the_canaries_before_its_first_shard_and_the_driver_refuses(store, pool):
    """`--executor ray`: each worker's judge grades the canaries before its first shard; a fooled one returns what it
    has with the refusal, and the driver keeps the grades in the run's row and refuses the run. (The worker is built
    here without Ray around it: its engine and judge scripted, its workers real.)"""
    from factory import distributed
    from factory.stages import Gate

    r = _recipe(canaries=1)
    worker = object.__new__(distributed.ShardWorker)
    worker.recipe, worker.name, worker.pool, worker.dedup = r, "here:1", pool, None
    worker.engine = ScriptedEngine(_script(fooled_from_check=0))
    worker.judge, worker.vetted = judging.Judge(r, worker.engine, "scripted"), False
    run = store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})
    job = Job(r, PROMPTS[:3], store, run, Gate(r, store))
    land = distributed.Landing(job, distributed.ShardTally())
    [shard] = land.cut([p.prompt_id for p in PROMPTS[:2]], 2)
    res = json.loads(json.dumps(worker.shard(shard), default=str))
    assert res["refused"] and res["candidates"] == [] and [c["after"] for c in res["canaries"]] == [0]
    with pytest.raises(judging.JudgeRefused, match="failed canary answers that say nothing"):
        land.land(res)
    _, [(raw,)] = store.query(f"SELECT canaries FROM runs WHERE run_id = '{run}'")
    assert judging.failed(json.loads(raw)) and "FLAGGED" in judging.canary_line(raw)

    worker.engine = worker.judge.engine = ScriptedEngine(_script())  # an honest judge: graded once, then sampled
    worker.vetted, land = False, distributed.Landing(job, distributed.ShardTally())
    [shard] = land.cut([p.prompt_id for p in PROMPTS[:2]], 2)
    res = json.loads(json.dumps(worker.shard(shard), default=str))
    assert res["refused"] is None and len(res["candidates"]) == 2 and len(res["canaries"]) == 1
    land.land(res)
    assert worker.vetted and worker.shard(land.cut([PROMPTS[2].prompt_id], 1)[0])["canaries"] == []


def test_factory_filter_sends_the_judge_only_the_disputes_too(tmp_path):
    """`factory filter` with the cascade: records judged as a run judges its candidates."""
    from factory.curate import run_filter
    from factory.run import make_pool

    records = [{"id": str(i), "task": "math", "prompt": f"Question {i}: what is it?", "reference": ref,
                "completion": text} for i, (ref, text, *_) in enumerate(CASES)]  # fmt: skip
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = _recipe()
    r.verify.workers = 1
    engine = ScriptedEngine(_script())
    with make_pool(r) as pool:
        run_filter(src, out, r, pool, judging.Judge(r, engine, "scripted"), think=False)
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(b["accepted"], b["reason"]) for b in back[:3]] == [
        (True, "rescued_by_judge"),
        (False, "overruled_by_judge"),
        (False, "wrong_answer"),
    ]
    assert len(engine.asked) == 3 and all("judge_score" not in b["scores"] for b in back[3:])


def test_a_resumed_run_keeps_the_checks_made_during_it(store):
    """The row holds the check before the run and every recheck; a resume grades the first again and keeps the rest."""
    run = store.start_run("t", "h", "", "m", "scripted", {}, {})
    store.add_canaries(run, {"canaries": {}, "after": 0})  # a Ray worker's, with no first check yet: the first
    store.add_canaries(run, {"canaries": {}, "after": 500})
    store.set_canaries(run, {"canaries": {}, "resumed": True})
    store.add_canaries(run, {"canaries": {}, "after": 1000})
    _, [(raw,)] = store.query(f"SELECT canaries FROM runs WHERE run_id = '{run}'")
    held = json.loads(raw)
    assert held["resumed"] and [c["after"] for c in held["rechecks"]] == [500, 1000]
