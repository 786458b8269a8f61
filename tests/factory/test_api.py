"""The Python API (factory/api.py): generate, resume, read the store and evaluate from a program, as the CLI does
(the CLI's own tests run it on the real engine; here a replayed model keeps it quick)."""

from __future__ import annotations

import json
import subprocess
import sys

import factory
from factory import benchmarks


def _recipe(tmp_path, answers: dict[str, list[str]]):
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p, "answer": a[0]}) + "\n"
                                              for p, a in answers.items()))  # fmt: skip
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": f"The answer is {c}."}) + "\n"
                                              for p, a in answers.items() for c in a[1:]))  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"source: {{kind: jsonl, path: {tmp_path / 'p.jsonl'}}}\n"
                      f"engine: {{kind: replay, replay: {tmp_path / 'a.jsonl'}}}\nprompt: {{think: false}}\n"
                      "verify: {workers: 1}\n"
                      "rejection: {accept_per_prompt: 1, max_samples: 2, round_size: 1}\n")  # fmt: skip
    return recipe


# each prompt: its answer, then the answers the replayed model gives in order
ANSWERS = {"What is 2 + 3?": ["5", "5", "7"], "What is 4 + 4?": ["8", "9", "8"], "What is 1 + 6?": ["7", "1", "2"]}


def test_generate_resume_read_and_eval_from_a_program(tmp_path):
    recipe, db = _recipe(tmp_path, ANSWERS), tmp_path / "s.duckdb"
    seen = []
    done = factory.generate(recipe, db=db, progress=lambda t: seen.append(t.candidates))
    assert not done.resumed and done.db == db and done.recipe.source.path.endswith("p.jsonl")
    # the first prompt is right at once, the second at its second sample, the third never in two
    assert (done.tally.candidates, done.tally.examples) == (5, 2) and seen and seen[-1] == 5
    again = factory.generate(recipe, db=db)
    assert again.resumed and again.run_id == done.run_id and again.tally.candidates == 5  # nothing drawn twice
    with factory.open_store(db) as store:
        (row,) = store.query("SELECT count(*), count(*) FILTER (WHERE accepted) FROM candidates")[1]
    assert row == (5, 2)
    score = factory.eval_model("replayed", recipe)
    assert (score.n, score.correct) == (3, 1) and score.line() == "accuracy 1/3 = 33.3%"  # each prompt's first answer


def test_eval_benchmarks_from_a_program(tmp_path):
    items = benchmarks.items("champ")[:2]
    lines = [{"prompt": i.problem, "completion": f"The answer is \\boxed{{{i.answer}}}."} for i in items[:1]]
    lines += [{"prompt": i.problem, "completion": "The answer is \\boxed{-12345}."} for i in items[1:]]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"engine: {{kind: replay, replay: {tmp_path / 'a.jsonl'}}}\nprompt: {{think: false}}\n"
                      "verify: {workers: 1}\n")  # fmt: skip
    (sc,) = factory.eval_benchmarks("replayed", ["champ"], recipe, limit=2)
    assert (sc["problems"], sc["pass@1"]) == (2, 0.5)


def test_importing_factory_loads_nothing_heavy():
    code = (
        "import sys, factory; print(sorted(m for m in ('factory.api', 'duckdb', 'torch', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert callable(factory.generate) and set(factory.API) <= set(dir(factory))
