"""`factory eval`: greedy accuracy judged by the real verifiers, on recorded answers (engine.kind replay). Its run on
the real engine (vLLM) is tests/trainers/test_sft.py's, which evaluates the model that test trained."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli

from factory.evaluate import Score, wilson


def test_wilson_interval():
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and 0.27 < hi < 0.28  # where the normal approximation would say [0, 0]
    lo, hi = wilson(5, 10)
    assert 0.23 < lo < 0.24 and 0.76 < hi < 0.77
    lo, hi = wilson(10, 10)
    assert 0.72 < lo < 0.73 and hi == 1.0
    s = Score("m", "r", n=8, correct=3)
    assert s.line() == "accuracy 3/8 = 37.5%" and s.as_dict()["ci95"] == list(wilson(3, 8))


def _replay(tmp_path, answers: dict[str, str]) -> str:
    """An engine section that answers each prompt with its recorded answer (engine.kind replay)."""
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps({"prompt": q, "completion": a}) + "\n" for q, a in answers.items()))
    return f"engine: {{kind: replay, replay: {path}}}\n"


def test_eval_counts_only_verified_answers(tmp_path):
    # every reference is wrong, so no answer can be right: an eval that did not verify would count the right sums
    prompts = tmp_path / "sums.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"What is {a} + {a}?", "answer": "-12345"}) + "\n" for a in range(6))
    )
    recipe = tmp_path / "decoy.yaml"
    recipe.write_text(
        f"source: {{kind: jsonl, path: {prompts}}}\n"
        + _replay(tmp_path, {f"What is {a} + {a}?": f"{a} + {a} = {2 * a}" for a in range(6)})
        + "prompt: {template: '{prompt} Give only the final answer.', think: false}\n"
        "sampling: {max_tokens: 32}\nverify: {workers: 1}\nfilters: [format, verify]\n"
    )
    res = run_cli("eval", "smollm2-135m-instruct", str(recipe), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["n"] == 6 and out["correct"] == 0 and out["accuracy"] == 0.0
    assert sum(out["misses"].values()) == 6 and out["mean_tokens"] > 0
    assert out["ci95"][0] == 0.0 and 0 < out["ci95"][1] < 0.5


def test_eval_refuses_a_missing_recipe_or_model(tmp_path, demo_recipe):
    res = run_cli("eval", "smollm2-135m-instruct", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "recipe not found" in res.stderr
    res = run_cli("eval", str(tmp_path / "no-model"), str(demo_recipe), "--limit", "2")
    assert res.returncode == 2 and "not a model folder" in res.stderr and "Traceback" not in res.stderr


def _jsonl_recipe(tmp_path, name: str, items: list[tuple[str, str]], grpo: bool = False, engine: str = ""):
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in items))
    recipe = tmp_path / f"{name}.yaml"
    if grpo:  # a GRPO recipe drawing its prompts from a source
        recipe.write_text(f"prompts: {{kind: source, limit: 1}}\nsource: {{kind: jsonl, path: {data}}}\n")
    else:
        recipe.write_text(
            f"source: {{kind: jsonl, path: {data}}}\n"
            + (engine or "engine: {kind: vllm, max_model_len: 1024}\n")
            + "prompt: {template: '{prompt} Give only the final answer.', think: false}\n"
            "sampling: {max_tokens: 16}\nverify: {workers: 1}\nfilters: [format, verify]\n"
        )
    return recipe


def _store_with(tmp_path, texts: list[str]):
    import duckdb

    from factory.store import StoreWriter

    db = tmp_path / "train.duckdb"
    StoreWriter(db).close()
    con = duckdb.connect(str(db))
    for i, t in enumerate(texts):
        con.execute("INSERT INTO prompts VALUES (?, 'jsonl', 'math', ?, '{}', '{}')", [f"p{i}", t])
    con.close()
    return db


SUMS = [(f"What is {a} + {a}?", str(2 * a)) for a in range(1, 7)]


def test_trained_on_reads_stores_and_both_kinds_of_recipe(tmp_path):
    import duckdb

    from factory.errors import FactoryError
    from factory.evaluate import same_text, trained_on

    gen = _jsonl_recipe(tmp_path, "gen", SUMS[:2])
    grpo = _jsonl_recipe(tmp_path, "grpo", SUMS[2:4], grpo=True)  # limit 1: only its first prompt was drawn
    db = _store_with(tmp_path, ["  " + SUMS[5][0].upper().replace(" ", "\t ")])  # the same problem, respaced
    seen = trained_on([gen, grpo, db])
    assert seen == {same_text(SUMS[i][0]) for i in (0, 1, 2, 5)}
    assert trained_on([]) == set()
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    (tmp_path / "store_grpo.yaml").write_text("prompts: {kind: store, where: \"p.task = 'math'\"}\n")
    for bad, says in [
        (tmp_path / "missing.duckdb", "no such store or recipe"),
        (tmp_path / "store_grpo.yaml", "name that store instead"),
        (gen.with_suffix(".jsonl"), "not a recipe .* cannot open the store"),
        (empty, "not a factory store"),
    ]:
        with pytest.raises(FactoryError, match=says):
            trained_on([bad])


def test_eval_reports_accuracy_on_prompts_not_trained_on(tmp_path):
    # recorded answers: right on the first three sums, wrong on the rest
    answers = {q: (f"It is {a}." if i < 3 else "It is 0.") for i, (q, a) in enumerate(SUMS)}
    recipe = _jsonl_recipe(tmp_path, "eval", SUMS, engine=_replay(tmp_path, answers))
    gen = _jsonl_recipe(tmp_path, "gen", SUMS[:2])
    db = _store_with(tmp_path, [SUMS[1][0], SUMS[4][0]])  # overlaps the recipe's on one prompt
    res = run_cli("eval", "smollm2-135m-instruct", str(recipe), "--json", "--training", str(gen), "--training", str(db))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["n"] == 6 and out["correct"] == 3  # 6 prompts, 3 (sums 0, 1, 4) held by the training data
    assert out["unseen"] == {**out["unseen"], "n": 3, "correct": 1}  # sums 2, 3, 5: only 2 is right
    res = run_cli("eval", "smollm2-135m-instruct", str(recipe), "--training", str(db))
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"unseen in training\s+50\.0% \(2/4 prompts", res.stdout), res.stdout  # sums 0, 2, 3, 5
    assert res.stdout.strip().splitlines()[-1] == "accuracy 3/6 = 50.0%"
