"""Does the factory's data teach? Rejection-sampling fine-tuning measured against an unverified control.

On two-term arithmetic (+, -, *; 1-2 digits) with the bundled SmolLM2-135M-Instruct, every step a `factory` command:

1. `factory generate recipes/r1/rs.yaml` with the base model on training problems (seed 11: reasoning-gym's problems
   11-2010; the eval seeds' problems start at 1,000,000):
   up to 8 samples a prompt until one passes every verifier and filter; K examples land in the store;
2. the control: `factory generate` of the same recipe with verification switched off (`filters=[format]`, one
   sample a prompt), K of its candidates;
3. `factory train sft recipes/r1/sft.yaml` of the base model on each;
4. `factory eval` of the base model and both SFT models on fresh problems (recipes/r1/eval.yaml, seeds 1,000,000 and
   2,000,000), with both stores named as `--training`, so the accuracy on problems no training store holds (some
   repeat by chance: there are only so many pairs of 1-2 digit numbers) is shown too.

Goal: the verified arm at least 15 points over the base model and 10 over the control, on every eval seed.

    python benchmarks/teaching.py                      # about 40 minutes on 2 cores
    python benchmarks/teaching.py --workdir data/runs/teaching --train-size 1000
    python benchmarks/teaching.py --train-size 24 --max-samples 2 --limit 4 --eval-seeds 1000000 --engine transformers
                                                       # a quick run through every step (its goals not met)
    python benchmarks/teaching.py --problems gsm8k --train-size 400 --max-samples 4 --limit 300
                                                       # GSM8K: train problems from its train split
                                                       # (recipes/gsm8k_rft.yaml), greedy eval on its test split

With --problems gsm8k the eval is GSM8K's test split (its first --limit problems, one "seed") with the training
recipe's prompt, and the result is reported with Wilson intervals; the goals are arithmetic's and are not checked.

With --workdir, a step already done there is not redone: generation resumes its run in the store (a finished run
returns at once), and a trained model folder is reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import table  # noqa: E402
from factory.store import StoreReader  # noqa: E402
from filters.base import Candidate  # noqa: E402
from filters.verify import verify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RS = ROOT / "recipes" / "r1" / "rs.yaml"
SFT = ROOT / "recipes" / "r1" / "sft.yaml"
EVAL = ROOT / "recipes" / "r1" / "eval.yaml"
GSM8K = ROOT / "recipes" / "gsm8k_rft.yaml"
BASE = "smollm2-135m-instruct"
GOAL_OVER_BASE, GOAL_OVER_CONTROL = 15.0, 10.0


def factory(*args: str, capture: bool = False) -> str:
    """One `factory` command in its own process (vLLM and the trainers never share one); its stdout if captured."""
    out = subprocess.run(
        [sys.executable, "-m", "factory.cli", *args],
        cwd=ROOT,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else sys.stderr,
    )
    return out.stdout or ""


def count(db: Path, sql: str) -> int:
    store = StoreReader(db)
    try:
        return int(store.query(sql)[1][0][0])
    finally:
        store.close()


def right(db: Path, k: int) -> int:
    """How many of the store's first k examples (the order SFT reads them in) the verifier would have passed."""
    store = StoreReader(db)
    try:
        rows = store.query(
            f"""SELECT c.text, p.task, p.reference, c.finish_reason
                FROM (SELECT candidate_id, prompt_id FROM examples ORDER BY created_at, example_id LIMIT {k}) e
                JOIN candidates c USING (candidate_id) JOIN prompts p ON p.prompt_id = e.prompt_id"""
        )[1]
    finally:
        store.close()
    return sum(verify(Candidate(t, task, json.loads(ref), fin, False)).accepted for t, task, ref, fin in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="keep stores and models here (default: a temporary folder)")
    ap.add_argument("--train-size", type=int, default=2000, help="training problems drawn (seed --train-seed)")
    ap.add_argument("--train-seed", type=int, default=11)
    ap.add_argument("--max-samples", type=int, default=8, help="samples a prompt at most in the verified arm")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--eval-seeds", default="1000000,2000000")
    ap.add_argument("--limit", type=int, default=200, help="eval problems a seed")
    ap.add_argument("--engine", default="vllm", help="the engine that generates and evaluates (engine.kind)")
    ap.add_argument(
        "--problems",
        choices=("arithmetic", "gsm8k"),
        default="arithmetic",
        help="arithmetic (reasoning-gym, recipes/r1) or gsm8k (the registry's GSM8K, train then test)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, args.workdir or Path(tmp))


def run(args, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    verified, control = work / "verified.duckdb", work / "control.duckdb"
    gsm8k = args.problems == "gsm8k"
    rs, ev = (GSM8K, GSM8K) if gsm8k else (RS, EVAL)
    source = [f"source.size={args.train_size}", f"sampling.seed={args.train_seed}", f"engine.kind={args.engine}",
              *([] if gsm8k else [f"source.seed={args.train_seed}"])]  # fmt: skip
    sets = lambda items: [a for o in items for a in ("--set", o)]  # noqa: E731
    seconds: dict[str, float] = {}

    factory(
        "generate", str(rs), "--db", str(verified),
        *sets([*source, f"model={BASE}", f"rejection.max_samples={args.max_samples}",
                f"rejection.round_size={min(4, args.max_samples)}"]),
    )  # fmt: skip
    k = count(verified, "SELECT count(*) FROM examples")
    drawn = count(verified, "SELECT count(*) FROM candidates")
    if k == 0:  # the model solved none: rejection sampling has nothing to teach with (GSM8K and the bundled model)
        sys.exit(f"no verified example from {drawn} candidates on {args.train_size} problems: nothing to train on")
    factory(
        "generate", str(rs), "--db", str(control),
        *sets([*source, f"model={BASE}", "filters=[format]", "rejection.max_samples=1", "rejection.round_size=1"]),
    )  # fmt: skip
    control_right = right(control, k)
    for arm, db in (("verified", verified), ("control", control)):  # the run's own time, also when done before
        seconds[f"generate {arm}"] = count(db, "SELECT max(epoch(ended_at) - epoch(started_at)) FROM runs")
    models = {"base": BASE}
    for arm, db in (("verified", verified), ("control", control)):
        out = work / f"sft_{arm}"
        models[arm] = str(out)
        if (out / "config.json").exists() and (out / "model.safetensors").exists():  # trained before
            continue
        factory(
            "train", "sft", str(SFT), "--db", str(db), "--out", str(out),
            *sets([f"model={BASE}", f"data.limit={k}", f"train.epochs={args.epochs}",
                   *(["sft.max_length=512"] if gsm8k else [])]),  # a GSM8K solution is longer than a sum
        )  # fmt: skip

    scores: dict[tuple[str, int], dict] = {}
    seeds = [0] if gsm8k else [int(s) for s in args.eval_seeds.split(",")]
    for seed in seeds:
        for arm, model in models.items():
            where = (
                ["--set", "source.split=test", "--set", "source.size=0"] if gsm8k else ["--set", f"source.seed={seed}"]
            )
            text = factory(
                "eval", model, str(ev), "--limit", str(args.limit), *where, "--json",
                "--set", f"engine.kind={args.engine}",
                "--training", str(verified), "--training", str(control), capture=True,
            )  # fmt: skip
            scores[arm, seed] = json.loads(text.strip().splitlines()[-1])
            seconds[f"eval {arm} seed {seed}"] = scores[arm, seed]["seconds"]
    for arm in ("verified", "control"):
        last = json.loads((work / f"sft_{arm}" / "metrics.jsonl").read_text().splitlines()[-1])
        seconds[f"sft {arm}"] = last.get("train_runtime", last.get("elapsed_s", 0.0))

    print(f"\ntraining: {k} verified examples from {drawn} candidates on {args.train_size} problems (seed "
          f"{args.train_seed}, up to {args.max_samples} samples each); the control: the first {k} of one unverified "
          f"sample a problem, {control_right} of them right")  # fmt: skip
    pct = lambda s: f"{100 * s['accuracy']:.1f}% ({s['correct']}/{s['n']})"  # noqa: E731
    upct = lambda s: f"{100 * s['unseen']['accuracy']:.1f}% ({s['unseen']['correct']}/{s['unseen']['n']})"  # noqa: E731
    rows = []
    for seed in seeds:
        base = scores["base", seed]
        for arm in models:
            s = scores[arm, seed]
            rows.append([seed, arm, pct(s), f"{100 * (s['accuracy'] - base['accuracy']):+.1f}", upct(s),
                         f"{100 * (s['unseen']['accuracy'] - base['unseen']['accuracy']):+.1f}"])  # fmt: skip
    print(table(["eval seed", "model", "greedy accuracy", "vs base", "unseen in training", "vs base"], rows))
    print(table(["step", "seconds"], [[k_, round(v)] for k_, v in seconds.items()]))
    if gsm8k:
        print(table(["model", "GSM8K test accuracy", "95% interval"],
                    [[arm, pct(scores[arm, 0]), "{:.1f}-{:.1f}%".format(*(100 * x for x in scores[arm, 0]["ci95"]))]
                     for arm in models]))  # fmt: skip
        return
    ok = True
    for seed in seeds:
        v, c, b = (100 * scores[a, seed]["accuracy"] for a in ("verified", "control", "base"))
        for what, gain, goal in (("base", v - b, GOAL_OVER_BASE), ("control", v - c, GOAL_OVER_CONTROL)):
            met = gain >= goal
            ok &= met
            print(
                f"seed {seed}: verified over {what} {gain:+.1f} points (goal +{goal:.0f}): {'met' if met else 'MISSED'}"
            )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
