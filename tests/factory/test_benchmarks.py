"""The benchmark registry: its manifest, files checked by checksum, the committed decontamination index, the
`benchmark` source, and `factory eval --benchmark` (pass@k by the unbiased estimator, on recorded answers)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re

import numpy as np
import pytest
from conftest import run_cli

from factory import benchmarks
from factory.bencheval import pass_at_k
from factory.errors import FactoryError
from factory.recipe import Recipe, SourceConfig
from filters.decontam import INDEX, DecontamConfig, registry_index
from filters.ngram_index import NgramIndex

HEX = re.compile(r"[0-9a-f]+")


def test_the_manifest_names_origin_license_rows_and_checksum_of_every_split():
    reg = benchmarks.registry()
    assert {"math500", "gsm8k", "aime24", "aime25", "amc23", "olympiadbench", "minerva_math", "humaneval"} <= set(reg)
    for b in reg.values():
        assert b.task in ("math", "code") and len(b.license) > 10 and "test" in b.splits, b.name
        for s in b.splits.values():
            assert s.rows > 0
            if s.package:
                assert s.version, s
                continue
            assert HEX.fullmatch(s.sha256) and len(s.sha256) == 64, s
            assert HEX.fullmatch(s.origin["commit"]) and len(s.origin["commit"]) == 40, s
            assert s.origin["repo"].count("/") == 1 and s.origin["path"].endswith((".jsonl", ".json")), s
    assert set(reg["gsm8k"].splits) == {"test", "train"}
    mbpp = reg["mbpp"].splits["test"]
    assert (reg["mbpp"].task, mbpp.rows, mbpp.ids) == ("code", 257, (11, 510))


def test_the_committed_index_covers_every_set_and_matches_the_packages_sets():
    """Every registered test set has its rows in data/benchmarks/ngrams.npz (no text, hashes only), made with the
    default settings; the sets a package ships, rebuilt here, give the very same hashes less the registry's common
    phrasing (a change to the words or the hashing not followed by `factory benchmarks --index` fails here)."""
    cfg = DecontamConfig()
    with np.load(INDEX, allow_pickle=False) as z:
        scheme = json.loads(str(z["scheme"]))
        items = [tuple(s.split("\t", 1)) for s in z["items"].tolist()]
    assert (scheme["ngram"], scheme["min_words"], scheme["solution_ngram"]) == (cfg.ngram, cfg.min_words, 12)
    per = {b: sum(1 for x, _ in items if x == b) for b, _ in items}
    assert per == {b.name: b.splits["test"].rows for b in benchmarks.test_sets()}
    problems, solutions = registry_index(cfg.ngram, cfg.min_words, cfg.solution_ngram)
    for name in ("humaneval", "champ"):
        fresh = {i.id: i.problem for i in benchmarks.items(name)}
        rebuilt = NgramIndex.build({name: fresh}, cfg.ngram, cfg.min_words)
        want = set(rebuilt.hashes.tolist()) - set(problems.common.tolist())
        assert set(problems.only({name}).hashes.tolist()) == want and want, name
        sols = {i.id: i.solution for i in benchmarks.items(name) if i.solution}
        rebuilt = NgramIndex.build({name: sols}, cfg.solution_ngram, cfg.solution_ngram)
        want = set(rebuilt.hashes.tolist()) - set(solutions.common.tolist())
        assert set(solutions.only({name}).hashes.tolist()) == want and want, name


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry of sets the test writes in the layouts of MATH-500, MATH, GSM8K and OlympiadBench."""
    files = tmp_path / "files"
    rows = {
        "m500/test.jsonl": [{"problem": "What is $1+1$?", "answer": "2", "solution": "It is $\\boxed{2}$.",
                             "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"}],
        "math/test.jsonl": [{"problem": "Half of 1?", "solution": "So $\\boxed{\\frac{1}{2}}$ it is.",
                             "type": "Prealgebra", "level": "Level 2", "idx": 0}],
        "gsm/train.jsonl": [{"question": "Sam has 1,200 pens and buys 50. How many?",
                             "answer": "1200+50=<<1200+50=1250>>1250\n#### 1,250"}],
        "olym/test.jsonl": [{"id": 7, "question": "Find n.", "solution": ["n is 3."], "final_answer": ["$3$"]}],
        "amc/test.jsonl": [{"id": 0, "problem": "How far?", "answer": 27.0}],
    }  # fmt: skip
    manifest = {}
    for rel, rs in rows.items():
        path = files / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rs))
        name, split = rel.split("/")[0], rel.split("/")[1].removesuffix(".jsonl")
        spec = {"file": rel, "rows": len(rs), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "origin": {"repo": "someone/evals", "commit": "a" * 40, "path": f"data/{rel}"}}  # fmt: skip
        manifest[name] = {"title": name.upper(), "task": "math", "license": "MIT (a test)", "splits": {split: spec}}
    manifest["m500"]["fields"] = {"problem": "problem", "answer": "answer", "solution": "solution",
                                  "id": "unique_id", "subject": "subject", "level": "level"}  # fmt: skip
    manifest["math"] |= {"fields": {"problem": "problem", "solution": "solution", "id": "idx", "level": "level"},
                         "answer_from": "boxed"}  # fmt: skip
    manifest["gsm"] |= {"fields": {"problem": "question", "solution": "answer"}, "answer_from": "hashes"}
    manifest["olym"] |= {"fields": {"problem": "question", "solution": "solution", "answer": "final_answer",
                                    "id": "id"}, "answer_from": "first"}  # fmt: skip
    manifest["amc"]["fields"] = {"problem": "problem", "answer": "answer", "id": "id"}
    mbpp = [  # MBPP's layout: one JSON list, its splits by task_id
        {"task_id": 3, "prompt": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
         "test_imports": [], "test_list": ["assert add(1, 2) == 3"]},
        {"task_id": 126, "prompt": "Write a function to sum the common divisors of two numbers.",
         "code": "def sum(a, b):\n    return 6",
         "test_imports": ["import math"],
         "test_list": ["assert sum(10, 15) == 6", "assert math.isfinite(sum(10, 15))"]},
    ]  # fmt: skip
    (files / "mbpp").mkdir()
    (files / "mbpp/all.json").write_text(json.dumps(mbpp, indent=2))
    digest = hashlib.sha256((files / "mbpp/all.json").read_bytes()).hexdigest()
    origin = {"repo": "someone/evals", "commit": "a" * 40, "path": "all.json"}
    manifest["mbpp"] = {"title": "MBPP", "task": "code", "license": "CC BY 4.0 (a test)", "format": "json",
                        "fields": {"problem": "prompt", "solution": "code", "id": "task_id", "tests": "test_list",
                                   "imports": "test_imports"},
                        "splits": {}}  # fmt: skip
    for split, ids in (("prompt", [1, 10]), ("test", [11, 510])):
        spec = {"file": "mbpp/all.json", "ids": ids, "rows": 1, "sha256": digest, "origin": origin}
        manifest["mbpp"]["splits"][split] = spec
    path = tmp_path / "manifest.yaml"
    path.write_text(json.dumps(manifest))  # JSON is YAML
    monkeypatch.setattr(benchmarks, "MANIFEST", path)
    monkeypatch.setenv("FACTORY_BENCHMARKS", str(files))
    benchmarks.registry.cache_clear()
    benchmarks._rows.cache_clear()
    yield files
    benchmarks.registry.cache_clear()
    benchmarks._rows.cache_clear()


def test_rows_are_read_in_each_layout(registry):
    (m,) = benchmarks.items("m500")
    assert (m.id, m.answer, m.subject, m.level) == ("test/algebra/1.json", "2", "Algebra", "1")
    assert benchmarks.items("math")[0].answer == "\\frac{1}{2}" and benchmarks.items("math")[0].level == "2"
    g = benchmarks.items("gsm", "train")[0]
    assert (g.id, g.answer) == ("train/0", "1250")  # after ####, separators dropped
    assert benchmarks.items("olym")[0].answer == "3" and benchmarks.items("olym")[0].solution == "n is 3."
    assert benchmarks.items("amc")[0].answer == "27"


def test_mbpp_layout_its_splits_by_id_and_its_tests_in_the_sandbox(registry):
    """A JSON list, split by task id; the problem as MBPP's paper prompts it (the text, then the tests); the tests run
    after the answer with the set's imports, and a function named like a builtin (MBPP's own `sum`, 126) is the
    entry point, so the answer's shadows it."""
    from filters.base import Candidate
    from filters.code import verify_code

    (p,), (t,) = benchmarks.items("mbpp", "prompt"), benchmarks.items("mbpp", "test")
    assert (p.id, t.id) == ("3", "126") and p.problem.endswith("pass these tests:\n\nassert add(1, 2) == 3")
    assert (p.extra["entry_point"], t.extra["entry_point"]) == (None, "sum")
    assert t.extra["test"] == "import math\nassert sum(10, 15) == 6\nassert math.isfinite(sum(10, 15))\n"
    answer = lambda code: Candidate(f"```python\n{code}\n```", "code", dict(t.extra), think=False)  # noqa: E731
    right = "def sum(a, b):\n    return __builtins__.sum(i for i in range(1, min(a, b)) if a % i == 0 and b % i == 0)"
    assert verify_code(answer(right)).accepted
    assert verify_code(answer(right.replace("range(1,", "range(2,"))).reason == "wrong_answer"
    assert verify_code(Candidate(f"```python\n{p.solution}\n```", "code", dict(p.extra), think=False)).accepted


def test_a_file_that_is_not_the_manifests_is_refused_and_a_missing_one_says_how_to_bring_it(registry, tmp_path):
    (registry / "m500/test.jsonl").write_text('{"problem": "x", "answer": "1"}\n')
    with pytest.raises(FactoryError, match=r"SHA-256 .* another version of the file; take the one at someone/evals@"):
        benchmarks.items("m500")
    (registry / "math/test.jsonl").unlink()
    with pytest.raises(FactoryError, match=r"math/test.jsonl is not here.*factory benchmarks --import"):
        benchmarks.items("math")
    with pytest.raises(FactoryError, match="no benchmark 'nope'"):
        benchmarks.items("nope")
    with pytest.raises(FactoryError, match="has no split 'train'"):
        benchmarks.items("m500", "train")


def test_import_copies_from_an_origin_checkout_only_what_matches(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "FILES", tmp_path / "imported")
    monkeypatch.delenv("FACTORY_BENCHMARKS")
    checkout = tmp_path / "checkout"
    (checkout / "data/gsm").mkdir(parents=True)
    (checkout / "data/gsm/train.jsonl").write_bytes((registry / "gsm/train.jsonl").read_bytes())
    (checkout / "data/amc").mkdir(parents=True)
    (checkout / "data/amc/test.jsonl").write_text('{"id": 0, "problem": "changed", "answer": 1}\n')
    done = {s.name: what for s, what in benchmarks.import_from(checkout)}
    assert done["gsm"].startswith("copied") and done["amc"].startswith("skipped: SHA-256")
    assert benchmarks.items("gsm", "train")[0].answer == "1250"
    assert not (tmp_path / "imported/amc/test.jsonl").exists()


def test_the_benchmark_source_and_its_recipe_checks():
    from factory import sources
    from factory.recipe import _check_source

    ps = sources.load(SourceConfig(kind="benchmark", name="humaneval", split="test"))
    assert len(ps) == 164 and {p.task for p in ps} == {"code"} and ps[0].source == "humaneval/test"
    assert ps[0].reference["entry_point"] == "has_close_elements" and "def check" in ps[0].reference["test"]
    assert ps[0].metadata["solution"].startswith(ps[0].prompt)  # the tests must pass it (factory.checks)
    problems: list[str] = []
    _check_source(SourceConfig(kind="benchmark", name="nope"), problems)
    _check_source(SourceConfig(kind="benchmark", name="champ", split="train"), problems)
    assert "'nope' is not a registered benchmark" in problems[0] and "champ has no split 'train'" in problems[1]


def test_pass_at_k_is_the_unbiased_estimator():
    """Against counting every k-subset of n answers: the share of subsets with a right answer."""
    for n, c in [(4, 0), (4, 1), (4, 3), (5, 2), (8, 8)]:
        answers = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(answers, k))
            assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets)), (n, c, k)


def _replay(tmp_path, lines: list[dict]):
    """A recipe whose engine plays back these recorded answers."""
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"engine: {{kind: replay, replay: {path}}}\nprompt: {{think: false}}\nverify: {{workers: 1}}\n")
    return recipe


def _eval(recipe, name: str, limit: int, samples: int) -> dict:
    res = run_cli("eval", "smollm2-135m-instruct", str(recipe), "--benchmark", name, "--limit", str(limit),
                  "--samples", str(samples), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (sc,) = json.loads(res.stdout)["benchmarks"]
    return sc


def test_eval_on_a_benchmark_counts_verified_answers_per_sample(tmp_path):
    """Recorded answers to CHAMP's first four problems, c of four right for c = 0..3 (a wrong one names another
    number): pass@1 is the mean of c/4, pass@4 the share with any right; greedy takes each problem's first."""
    items = benchmarks.items("champ")[:4]
    lines = []
    for c, item in enumerate(items):
        for j in range(4):
            ans = item.answer if j < c else f"{item.answer} + 1"
            lines.append({"prompt": item.problem, "completion": f"So the answer is \\boxed{{{ans}}}."})
    recipe = _replay(tmp_path, lines)
    sc = _eval(recipe, "champ", 4, 4)
    assert sc["problems"] == 4 and sc["samples"] == 4
    assert sc["pass@1"] == pytest.approx((0 + 1 + 2 + 3) / 16)
    assert sc["pass@2"] == pytest.approx(sum(pass_at_k(4, c, 2) for c in range(4)) / 4)
    assert sc["pass@4"] == pytest.approx(3 / 4) and sc["misses"] == {"wrong_answer": 10}
    res = run_cli("eval", "smollm2-135m-instruct", str(recipe), "--benchmark", "champ", "--limit", "4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "champ pass@1 = 75.0%"  # each problem's first answer: 3 of 4


def test_decontamination_is_on_by_default_for_prompts_and_responses():
    from factory.sources import make
    from factory.stages import Gate

    item = next(i for i in benchmarks.items("champ") if len((i.solution or "").split()) > 30)
    prompts = [make("mine", "math", "Please solve: " + item.problem, {"answer": "1"}),
               make("mine", "math", "What is 17 + 25?", {"answer": "42"})]  # fmt: skip
    gate = Gate(Recipe())  # filters [format, verify]: decontam is not listed, and runs all the same
    kept, dropped = gate.split(prompts)
    assert [p.prompt for p in kept] == ["What is 17 + 25?"]
    assert dropped[0][1].scores | {"ngram": None} == {"benchmark": "champ", "item": item.id, "method": "problem",
                                                       "ngram": None}  # fmt: skip
    (v,) = gate([("c1", "Let me think. " + item.solution)])  # a new prompt, the benchmark's solution reproduced
    assert (v.reason, v.scores["method"], v.scores["item"]) == ("contaminated", "solution", item.id)
    off = Recipe()
    off.decontam.enabled = False
    assert Gate(off).split(prompts)[0] == prompts


def test_a_leak_is_named_in_the_run_summary_and_in_stats(tmp_path):
    champ = next(i for i in benchmarks.items("champ") if len(i.problem.split()) > 20)
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": champ.problem, "answer": "1"}) + "\n"
                   + json.dumps({"prompt": "What is 2 + 3?", "answer": "5"}) + "\n")  # fmt: skip
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"prompt": "What is 2 + 3?", "completion": "2 + 3 = 5. The answer is 5."}) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"source: {{kind: jsonl, path: {src}}}\nengine: {{kind: replay, replay: {answers}}}\n"
                      "prompt: {think: false}\nverify: {workers: 1}\nrejection: {max_samples: 1}\n")  # fmt: skip
    db = tmp_path / "s.duckdb"
    res = run_cli("generate", str(recipe), "--db", str(db))
    assert res.returncode == 0, res.stderr[-3000:]
    said = " ".join(res.stderr.split())
    assert "CHAMP (1 prompts set aside by problem n-grams)" in said and "MATH-500 (none)" in said
    res = run_cli("stats", "--db", str(db), "--json")
    s = json.loads(res.stdout)
    assert s["contaminated"] == [{"benchmark": "champ", "method": "problem", "field": "prompt", "count": 1}]
    assert "champ" in s["checked_against"] and s["reasons"]["prompt_contaminated"] == 1


def test_eval_on_a_code_benchmark_runs_the_tests_in_the_sandbox(tmp_path):
    """HumanEval's first two problems, each answered once with its canonical solution and once with `pass`."""
    items = benchmarks.items("humaneval")[:2]
    lines = []
    for i in items:
        lines.append({"prompt": i.problem, "completion": f"```python\n{i.problem}{i.solution}```"})
        lines.append({"prompt": i.problem, "completion": f"```python\n{i.problem}    pass\n```"})
    sc = _eval(_replay(tmp_path, lines), "humaneval", 2, 2)
    assert (sc["pass@1"], sc["pass@2"]) == (0.5, 1.0) and sum(sc["misses"].values()) == 2
