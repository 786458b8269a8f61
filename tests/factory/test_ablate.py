"""`factory ablate`: arms trained by the real trainer on a real (replayed) store and evaluated by the real engine,
each on exactly the budget; a kill in the middle resumes without retraining the finished arms; the table's
intervals are Newcombe's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FACTORY, ROOT, run_cli, tables

from factory import ablate
from factory.ablate_results import cells, newcombe, summary
from factory.errors import FactoryError

HERE = Path(__file__).parent / "ablate_tiny"
TWO = ["--set", "policies=[verified,shortest-verified]"]


def lines(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "arms.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_killed_ablation_resumes_without_retraining_finished_arms(tmp_path):
    work = tmp_path / "w"
    cmd = [FACTORY, "ablate", str(HERE / "ablation.yaml"), "--workdir", str(work), *TWO]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second = work / "arms" / "shortest-verified-seed0"
    deadline = time.monotonic() + 1200
    while not (second / "data.json").exists():  # the second arm's trainer has its data: it is training now
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = work / "arms" / "verified-seed0" / "model.safetensors"
    trained_at = first.stat().st_mtime_ns
    assert [(r["arm"], r["status"]) for r in lines(work)] == [
        ("base", "done"),
        ("verified-seed0", "trained"),
        ("verified-seed0", "done"),
    ]
    res = run_cli("ablate", str(HERE / "ablation.yaml"), "--workdir", str(work), *TWO, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "verified-seed0: done before, skipped" in res.stderr
    assert first.stat().st_mtime_ns == trained_at  # the finished arm was not trained again
    got = [(r["arm"], r["status"]) for r in lines(work)]
    assert got == [
        ("base", "done"),
        ("verified-seed0", "trained"),
        ("verified-seed0", "done"),
        ("shortest-verified-seed0", "trained"),
        ("shortest-verified-seed0", "done"),
    ]
    plan = json.loads((work / "plan.json").read_text())
    assert plan["unit"] == "examples" and plan["size"] == min(s["examples"] for s in plan["sizes"].values())
    for r in lines(work)[1:]:  # every arm trained on exactly the budget
        assert r["data"]["examples"] == plan["size"]
        assert json.loads((work / "arms" / r["arm"] / "data.json").read_text())["examples"] == plan["size"]
    (table,) = tables(res.stdout)
    assert [row[0] for row in table[1:]] == ["base", "verified", "shortest-verified"]
    assert all(row[2] == str(plan["size"]) for row in table[2:])
    assert all(row[5].endswith(")") and "/4;" in row[5] for row in table[1:])  # 4 eval problems, with an interval
    assert "<figure id='ablation-tiny_ablation'>" in (work / "report.html").read_text()
    page = tmp_path / "r.html"
    res = run_cli("report", "--db", str(work / "store.duckdb"), "--ablation", str(work), "--out", str(page))
    assert res.returncode == 0 and "accuracy by policy" in page.read_text()


def test_a_budget_no_policy_can_fill_is_refused_before_training(tmp_path):
    work = tmp_path / "w"
    res = run_cli("ablate", str(HERE / "ablation.yaml"), "--workdir", str(work), "--set", "budget.size=5")
    assert res.returncode == 2, res.stderr[-3000:]
    assert "budget 5 examples: more than verified (3), shortest-verified (3), first-sample (4)" in res.stderr
    assert not (work / "arms").exists() and not (work / "plan.json").exists()


def test_a_bad_ablation_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ncolour: red\nstore: {}\nsft: {recipe: missing.yaml}\npolicies: [verified, best, verified]\n"
        "budget: {unit: words}\nseeds: []\neval: {recipe: nope.yaml}\n"
    )
    with pytest.raises(FactoryError) as e:
        ablate.load(bad)
    msg = str(e.value)
    parts = ["colour: unknown key", "store: name a generate recipe", "sft.recipe", "eval.recipe"]
    parts += ["policies[1]: policy 'best'", "each once", "budget: unit 'words'", "seeds: []"]
    for part in parts:
        assert part in msg, msg
    res = run_cli("ablate", str(bad), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 2 and "8 problem(s)" in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "w").exists()


def test_newcombes_interval_matches_his_worked_examples():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10
    published = {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (5, 56, 0, 29): (-0.0381, 0.1926),
    }
    for (k1, n1, k2, n2), (lo, hi) in published.items():
        d, low, high = newcombe(k1, n1, k2, n2)
        assert abs(d - (k1 / n1 - k2 / n2)) < 1e-12 and abs(low - lo) < 5e-5 and abs(high - hi) < 5e-5


def test_seeds_pool_and_a_difference_outside_its_interval_is_marked():
    def arm(policy, seed, k, n=100):
        data = {"examples": 50, "tokens": 400, "accepted": 50 if policy != "all" else 20}
        ev = {"n": n, "correct": k, "unseen": {"n": n, "correct": k, "accuracy": k / n}}
        name = policy if seed is None else f"{policy}-seed{seed}"
        return {"arm": name, "policy": policy, "seed": seed, "data": None if seed is None else data, "eval": ev}

    arms = [arm("base", None, 20), arm("verified", 0, 60), arm("verified", 1, 50), arm("all", 0, 25), arm("all", 1, 27)]
    arms[3]["benchmarks"] = [{"benchmark": "gsm8k", "pass@1": 0.1}]
    arms[4]["benchmarks"] = [{"benchmark": "gsm8k", "pass@1": 0.2}]
    result = {"arms": arms}
    base, verified, all_ = summary(result)
    assert (verified["correct"], verified["n"], all_["correct"], all_["n"]) == (110, 200, 52, 200)
    assert verified["vs_base"][1] > 0 and "vs_verified" not in verified
    assert all_["vs_verified"][2] < 0 and all_["vs_base"][1] < 0 < all_["vs_base"][2]
    row = cells(all_)
    assert row[:5] == ["all", "0,1", "50", "400", "40%"] and row[6].endswith(")") and row[7].endswith(" *")
    assert "seeds 25.0-27.0" in row[5] and row[9] == "gsm8k 15.0%" and cells(verified)[9] == "-"


@pytest.mark.parametrize("name", ["arithmetic.yaml", "math_gpu.yaml"])
def test_the_bundled_ablations_and_their_recipes_load(name):
    from factory import recipe as generate_recipe
    from trainers.recipe import SFTRecipe
    from trainers.recipe import load as load_trainer

    a = ablate.load(ROOT / "recipes" / "ablate" / name)
    assert len(a.policies) >= 4 and (ROOT / "recipes" / "ablate" / name).read_text().startswith("#")
    generate_recipe.load(a.path(a.store.recipe), a.store.set)
    generate_recipe.load(a.path(a.eval.recipe), a.eval.set)
    assert load_trainer(SFTRecipe, a.path(a.sft.recipe), a.sft.set).data.policy == "verified"  # the arms set theirs


def test_the_budget_is_fixed_at_the_first_start(tmp_path):
    a = ablate.load(HERE / "ablation.yaml", ["policies=[verified,all]"])
    db = ablate._store(a, tmp_path, print)  # the replayed store: seconds
    plan = ablate._plan(a, db, tmp_path, print)
    assert (plan["size"], plan["sizes"]["verified"]["examples"], plan["sizes"]["all"]["examples"]) == (3, 3, 15)
    more = ablate.load(HERE / "ablation.yaml", ["policies=[verified,all,wrong]"])  # a policy added later: sized
    assert ablate._plan(more, db, tmp_path, print)["sizes"]["wrong"]["examples"] == 8
    assert json.loads((tmp_path / "plan.json").read_text())["size"] == 3
    other = ablate.load(HERE / "ablation.yaml", ["policies=[verified,all]", "budget.unit=tokens"])
    with pytest.raises(FactoryError, match="give it another --workdir"):
        ablate._plan(other, db, tmp_path, print)
