"""`factory run`: stages chained on the real engine and trainers, each evaluated, resumable after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FACTORY, ROOT, rows, run_cli

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
        ("base", "eval", "done"), ("gen", "generate", "done"), ("sft", "sft", "done"), ("rl", "grpo", "done"),
    ]  # fmt: skip
    for r in got:
        assert ("eval" in r) is (r["kind"] != "generate")
        if "eval" in r:
            assert r["eval"]["n"] == 4 and 0 <= r["eval"]["correct"] <= 4
    gen = got[1]["metrics"]
    assert gen["prompts"] == 4 and 4 <= gen["candidates"] <= 8
    assert rows(work / "gen" / "store.duckdb", "SELECT count(*) FROM candidates") == [(gen["candidates"],)]
    assert got[2]["metrics"]["step"] == 2 and got[3]["metrics"]["step"] == 1
    # the grpo stage started from the sft stage's model, which started from the base
    assert json.loads((work / "rl" / "metrics.jsonl").read_text().splitlines()[0]) is not None
    assert (work / "final").resolve() == (work / "rl").resolve() and (work / "final" / "config.json").exists()
    assert "held-out accuracy" in res.stdout and "75.0%" in res.stdout or "%" in res.stdout
    again = run_cli("run", str(HERE / "chain.yaml"), "--workdir", str(work), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert lines(work) == got  # nothing ran twice
    assert again.stderr.count("done before, skipped") == 3


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
    assert got[1]["metrics"]["step"] == 6
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
    )
    with pytest.raises(FactoryError) as e:
        load(bad)
    msg = str(e.value)
    for part in ["colour: unknown key", "eval.recipe", "stages[0] (sft).model: 'later'", "stages[0] (sft).data: 'gen'",
                 "stages[1] (gen).kind: 'sample'", "stages[2] (rl).recipe", "stages[2] (rl).data: 'sft'"]:  # fmt: skip
        assert part in msg, msg
    res = run_cli("run", str(bad), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 2 and "7 problem(s)" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "w").exists()  # nothing started


@pytest.mark.parametrize("name", ["tiny.yaml", "gpu.yaml"])
def test_the_r1_pipelines_and_every_stage_recipe_load(name):
    from factory import recipe as generate_recipe
    from trainers.recipe import GRPORecipe, SFTRecipe
    from trainers.recipe import load as load_trainer

    p = load(ROOT / "recipes" / "r1" / name)
    assert [s.kind for s in p.stages] == ["grpo", "generate", "sft", "grpo", "generate", "sft", "grpo"]
    assert generate_recipe.load(p.path(p.eval.recipe)).source is not None
    for s in p.stages:
        if s.kind == "generate":
            generate_recipe.load(p.path(s.recipe))
        else:
            load_trainer(SFTRecipe if s.kind == "sft" else GRPORecipe, p.path(s.recipe))
    assert Path(p.path(p.eval.recipe)).read_text().startswith("#")  # each opens with what it does
