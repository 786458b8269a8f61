"""`factory audit`: how far a store's verdicts can be trusted, estimated from a second opinion on a sample.

    factory audit --db data/factory.duckdb [--run RUN] [--size 50] [--seed 0]
    factory audit --label 3f2a...=right --label 9c1e...=wrong

A seeded sample is drawn from each stratum of verdicts the verify stage gave: (task, source, accepted) and (task,
source, wrong_answer), up to `size` candidates each. Each one gets a second opinion that shares no code with the
verify stage where the task allows one:

- math: filters/second_opinion.py, its own extraction and exact-number equivalence (undecided on what it cannot
  read plainly: radicals, expressions, units);
- code: the tests run again in the sandbox (not independent: it catches verdicts that change from run to run, such
  as a timeout on a busy machine);
- general, and what the above leave undecided: with `--judge MODEL`, an LLM judge given the reference answer
  (`factory.judging`), trusted only once it has graded its canaries below its threshold on the sample's prompts;
  else none (undecided).

A person's label (`--label CANDIDATE=right|wrong`, kept in the store) overrides the second opinion. From the decided
items: the false-positive rate among accepts (accepted, yet wrong) and the false-negative rate among wrong_answer
rejects (rejected, yet right), per stratum with Wilson intervals, and over the store weighted by each stratum's size
(a normal interval from the strata's variances, each taken at (k + 1) / (n + 2) so that a stratum with no
disagreement still counts). Undecided items are left out of the rates and counted beside them. Every disagreement is
listed with both verdicts, for a person to settle. The audit and its items are kept in the store (`audits`,
`audit_items`, `audit_labels`); `factory report` and the dataset card show the latest.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from factory.errors import FactoryError
from factory.evaluate import wilson
from factory.store import StoreReader, StoreWriter, now

GROUPS = {"accepted": "false positives among accepts", "wrong_answer": "false negatives among wrong_answer rejects"}
Z = 1.96

# a seeded sample per stratum, without reading the texts of the rest: md5 orders each stratum's candidates
SAMPLE = """
WITH pool AS (
    SELECT c.candidate_id, p.task, p.source, CASE WHEN c.accepted THEN 'accepted' ELSE c.reason END AS verdict,
           row_number() OVER (PARTITION BY p.task, p.source, c.accepted
                              ORDER BY md5(c.candidate_id || ?)) AS pick
    FROM candidate_rows c JOIN prompts p USING (prompt_id)
    WHERE (c.accepted OR c.reason = 'wrong_answer') AND (? IS NULL OR c.run_id = ?)
)
SELECT pool.candidate_id, pool.task, pool.source, pool.verdict, v.text, p.reference, p.prompt
FROM pool JOIN candidates v USING (candidate_id) JOIN prompts p ON p.prompt_id = v.prompt_id
WHERE pick <= ? ORDER BY pool.task, pool.source, pool.verdict, pool.candidate_id
"""
POPULATION = """
SELECT p.task, p.source, CASE WHEN c.accepted THEN 'accepted' ELSE c.reason END AS verdict, count(*)
FROM candidate_rows c JOIN prompts p USING (prompt_id)
WHERE (c.accepted OR c.reason = 'wrong_answer') AND (? IS NULL OR c.run_id = ?)
GROUP BY ALL
"""


@dataclass
class Item:
    candidate_id: str
    task: str
    source: str
    verdict: str  # accepted | wrong_answer
    second: bool | None  # the second opinion: the answer is right, wrong, or it cannot tell
    detail: str
    label: bool | None = None  # a person's: the answer is right (True) or wrong (False)

    @property
    def truth(self) -> bool | None:
        return self.label if self.label is not None else self.second

    @property
    def disagrees(self) -> bool:
        return self.truth is not None and self.truth != (self.verdict == "accepted")


@dataclass
class Audit:
    audit_id: str
    run_id: str | None
    size: int
    seed: int
    population: dict[tuple[str, str, str], int]
    items: list[Item] = field(default_factory=list)

    def strata(self) -> list[dict]:
        """Per (task, source, verdict): the population, the sample, the decided, the disagreements, and the rate
        with its Wilson interval."""
        out = []
        for (task, source, verdict), n_pop in sorted(self.population.items()):
            mine = [i for i in self.items if (i.task, i.source, i.verdict) == (task, source, verdict)]
            decided = [i for i in mine if i.truth is not None]
            k = sum(i.disagrees for i in decided)
            lo, hi = wilson(k, len(decided))
            rate = k / len(decided) if decided else None
            labelled = sum(i.label is not None for i in mine)
            out.append(
                {
                    "task": task,
                    "source": source,
                    "verdict": verdict,
                    "population": n_pop,
                    "sampled": len(mine),
                    "decided": len(decided),
                    "labelled": labelled,
                    "disagree": k,
                    "rate": rate,
                    "low": lo,
                    "high": hi,
                }
            )
        return out

    def estimates(self) -> dict[str, dict]:
        """For accepts (false positives) and wrong_answer rejects (false negatives): the rate over the store,
        weighted by stratum size, with its interval; how much of the population the decided strata cover."""
        out = {}
        for group in GROUPS:
            rows = [s for s in self.strata() if s["verdict"] == group]
            total = sum(s["population"] for s in rows)
            known = [s for s in rows if s["decided"]]
            covered = sum(s["population"] for s in known)
            if not known:
                out[group] = {
                    "rate": None,
                    "low": None,
                    "high": None,
                    "population": total,
                    "covered": 0,
                    "decided": 0,
                    "disagree": 0,
                    "undecided": sum(s["sampled"] for s in rows),
                    "worst": None,
                }
                continue
            rate = sum(s["population"] * s["disagree"] / s["decided"] for s in known) / covered
            if len(known) == 1:
                low, high = known[0]["low"], known[0]["high"]
            else:
                var = sum(
                    (s["population"] / covered) ** 2 * _smoothed(s) * (1 - _smoothed(s)) / s["decided"] for s in known
                )
                low, high = max(0.0, rate - Z * math.sqrt(var)), min(1.0, rate + Z * math.sqrt(var))
            out[group] = {
                "rate": rate,
                "low": low,
                "high": high,
                "population": total,
                "covered": covered,
                "decided": sum(s["decided"] for s in known),
                "disagree": sum(s["disagree"] for s in known),
                "undecided": sum(s["sampled"] - s["decided"] for s in rows),
                # were every undecided item a disagreement: what the rate cannot exceed, but for sampling error
                "worst": sum(
                    s["population"] * (s["disagree"] + s["sampled"] - s["decided"]) / s["sampled"]
                    for s in rows
                    if s["sampled"]
                )
                / max(1, sum(s["population"] for s in rows if s["sampled"])),
            }
        return out

    def disagreements(self) -> list[Item]:
        return [i for i in self.items if i.disagrees]


def _smoothed(s: dict) -> float:
    return (s["disagree"] + 1) / (s["decided"] + 2)


def second_opinion(task: str, text: str, reference: dict) -> tuple[bool | None, str]:
    """Whether the answer is right by the second opinion (None: it cannot tell), and what it read."""
    if task == "math":
        from filters.second_opinion import opinion

        return opinion(text, reference)
    if task == "code":
        from filters.base import Candidate
        from filters.code import verify_code

        v = verify_code(Candidate(text, "code", reference, think="</think>" in text))
        return v.accepted, f"tests run again: {'passed' if v.accepted else v.reason}"
    return None, "no second opinion for this task"


def _existing(db) -> Path:
    if not Path(db).is_file():
        raise FactoryError(f"no store at {db}: run `factory generate` first, or name one with --db")
    return Path(db)


def run(db, run_id: str | None = None, size: int = 50, seed: int = 0, progress=None, judge=None) -> Audit:
    """Draw the sample, give each item its second opinion, keep the audit in the store. `judge` (a
    `factory.judging.Judge`, see `judge_for`) settles what the rule-based opinions leave undecided."""
    with StoreWriter(_existing(db)) as store:
        if run_id is not None and not store.query_args("SELECT 1 FROM runs WHERE run_id = ?", [run_id]):
            raise FactoryError(f"--run {run_id}: no such run in {db}; `factory stats` lists them")
        pop = {tuple(r[:3]): r[3] for r in store.query_args(POPULATION, [run_id, run_id])}
        rows = store.query_args(SAMPLE, [str(seed), run_id, run_id, size])
        labels = store.labels()
        audit = Audit(f"{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}", run_id, size, seed, pop)
        for n, (cid, task, source, verdict, text, ref, _) in enumerate(rows):
            second, detail = second_opinion(task, text or "", json.loads(ref) if ref else {})
            audit.items.append(Item(cid, task, source, verdict, second, detail, labels.get(cid)))
            if progress:
                progress(n + 1, len(rows))
        if judge is not None:
            _judged(audit.items, rows, judge)
        store.save_audit(audit)
    return audit


def judge_for(model: str, on_canary: str = "refuse", engine: str = "auto"):
    """A judge for the audit: `model` loaded on `engine`, greedy. Its canaries are graded on the sample's prompts
    before it settles anything (`_judged`)."""
    from factory import engines, judging, models
    from factory.recipe import EngineConfig, Recipe

    recipe = Recipe(model=model, engine=EngineConfig(kind=engine))
    recipe.judge.on_canary = on_canary
    path = model if engine == "openai" else models.resolve(model)
    return judging.Judge(recipe, engines.build(recipe, path, seed=0), model)


def _judged(items: list[Item], rows: list, judge) -> None:
    """The judge's opinion on every item still undecided, given the reference answer; first its canaries, graded on
    the undecided items' prompts (a judge that passes one is refused, or with on_canary flag noted in each detail)."""
    from factory import judging
    from factory.sources import make

    todo = [(item, row) for item, row in zip(items, rows, strict=True) if item.second is None]
    if not todo:
        return
    prompts = [make(row[2], row[1], row[6], json.loads(row[5]) if row[5] else {}) for _, row in todo]
    canaries = judging.check_canaries(judge, prompts)
    judging.refuse_if_fooled(canaries, "name a stronger judge with --judge, or pass --on-canary flag to go on")
    flagged = " (FLAGGED: it failed a canary)" if judging.failed(canaries) else ""
    asks = [(p.prompt, p.reference.get("answer"), row[4] or "") for p, (_, row) in zip(prompts, todo, strict=True)]
    answers = judge(asks)
    for (item, _), v in zip(todo, answers, strict=True):
        if v.reason == "judge_unparsable":
            item.detail += f"; judge {judge.model}: no score{flagged}"
            continue
        item.second = v.accepted
        item.detail += f"; judge {judge.model}: {v.scores.get('judge_score')} of 10{flagged}"


def by_run(db, size: int = 50, seed: int = 0) -> list[tuple[dict, dict, Audit]]:
    """An audit of each run of the store on its own, with the verifier versions the run recorded: runs judged by
    different versions side by side."""
    with StoreReader(_existing(db)) as store:
        runs = store.runs()
    out = []
    for r in runs:
        versions = json.loads(r["versions"] or "{}").get("verifiers") or {}
        out.append((r, versions, run(db, r["run_id"], size, seed)))
    return out


def label(db, marks: dict[str, bool], note: str | None = None) -> None:
    """Record a person's verdicts (candidate id -> right) in the store."""
    with StoreWriter(_existing(db)) as store:
        store.label(marks, note)


def latest(store: StoreReader, run_id: str | None = None) -> Audit | None:
    """The store's latest audit (of `run_id`, when given), with the labels recorded since."""
    return store.latest_audit(run_id)


def summary(a: Audit | None) -> list[str]:
    """Sentences for the report and the dataset card: each rate with its interval and what it rests on."""
    if a is None:
        return ["Not audited: `factory audit` estimates the verifier's false-positive and false-negative rates."]
    est, labelled = a.estimates(), sum(i.label is not None for i in a.items)
    out = []
    for group, what in GROUPS.items():
        e = est[group]
        if e["rate"] is None:
            out.append(f"{what.capitalize()}: not estimated (no second opinion decided any of {e['population']:,}).")
            continue
        out.append(
            f"{what.capitalize()}: {100 * e['rate']:.1f}% (95% interval {100 * e['low']:.1f}-{100 * e['high']:.1f}%),"
            f" from {e['decided']} decided second opinions ({e['disagree']} disagreeing), standing for"
            f" {e['covered']:,} of {e['population']:,} candidates; {e['undecided']} undecided (at most"
            f" {100 * e['worst']:.1f}% were every one of them a disagreement)."
        )
    scope = f"run {a.run_id}" if a.run_id else "every run"
    out.append(
        f"Audit {a.audit_id} of {scope}: up to {a.size} candidates per (task, source, verdict), seed {a.seed};"
        f" {labelled} settled by a person. Second opinions: math by an extraction and equivalence sharing no code with"
        " the verifier; code by running the tests again (not independent); what those leave undecided, and general"
        " tasks, by an LLM judge where the audit named one (`--judge`), else none."
    )
    return out
