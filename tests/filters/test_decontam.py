"""Decontamination: a benchmark problem inside a prompt is found and named; unrelated problems pass."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.base import FilterError
from filters.decontam import DecontamConfig, Decontaminator, champ_problems, humaneval_problems, load_source
from filters.ngram_index import NgramIndex


@pytest.fixture(scope="module")
def builtin() -> Decontaminator:
    return Decontaminator()


def test_humaneval_prompt_inside_a_longer_text(builtin):
    problem = humaneval_problems()["HumanEval/12"]
    text = f"Here is a task from my course.\n\n{problem}\n\nPlease write it in Python with comments."
    v = builtin(text)
    assert (v.accepted, v.reason) == (False, "contaminated")
    assert v.scores["benchmark"] == "humaneval" and v.scores["item"] == "HumanEval/12"
    assert len(v.scores["ngram"].split()) == 8
    assert v.scores["ngram"] in " ".join(re.findall(r"\w+", problem.lower()))  # normalised: words only


def test_champ_problem_reformatted(builtin):
    item, problem = next((k, t) for k, t in champ_problems().items() if "^" in t and len(t.split()) > 12)
    latex = "Solve: $" + problem.replace("^", "^{").replace(",", " ,") + "}$ Show all steps."
    v = builtin(latex)
    assert (v.reason, v.scores["benchmark"], v.scores["item"]) == ("contaminated", "champ", item)


def test_short_benchmark_problem_is_matched_whole(builtin):
    assert len(champ_problems()["P_Number-Theory_22"].split()) < 8  # "Find 3^105+4^105 mod 7."
    v = builtin("Quick one: find 3^105 + 4^105 mod 7, please.")
    assert (v.reason, v.scores["item"]) == ("contaminated", "P_Number-Theory_22")


def test_unrelated_math_problem_passes(builtin):
    text = (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?"
    )
    assert builtin(text).accepted
    # an example grid shares only numbers with HumanEval's docstrings: no evidence
    assert builtin("Rotate the grid:\n0 0 0 0 1 1 1 1\n1 1 1 1 0 0 0 0\nby 90 degrees.").accepted


def test_reasoning_gym_prompts_pass(builtin):
    import reasoning_gym

    for name in ("binary_matrix", "basic_arithmetic", "word_sorting", "chain_sum"):
        ds = reasoning_gym.create_dataset(name, size=20, seed=0)
        assert all(builtin(ds[i]["question"]).accepted for i in range(20)), name


def test_gsm_symbolic_is_found_to_be_gsm8k_test(builtin):
    """reasoning-gym's gsm_symbolic fills templates made from GSM8K's test problems (GSM-Symbolic, arXiv 2410.05229):
    its prompts leak GSM8K test, and the committed index (no GSM8K text in this repository) finds them."""
    import reasoning_gym

    ds = reasoning_gym.create_dataset("gsm_symbolic", size=40, seed=0)
    hits = [builtin(ds[i]["question"]) for i in range(40)]
    found = [v for v in hits if not v.accepted]
    assert len(found) >= 25, len(found)
    assert {v.scores["benchmark"] for v in found} == {"gsm8k"}
    assert all(v.scores["method"] == "problem" and v.scores["item"].startswith("test/") for v in found)


def test_fields_prompt_only_by_default(builtin):
    problem = humaneval_problems()["HumanEval/0"]
    assert builtin.check("Write a sorting function.", response=problem).accepted
    both = Decontaminator(DecontamConfig(fields=["prompt", "response"]))
    v = both.check("Write a sorting function.", response=problem)
    assert (v.reason, v.scores["field"], v.scores["item"]) == ("contaminated", "response", "HumanEval/0")


def test_user_jsonl_source(tmp_path):
    path = tmp_path / "aime.jsonl"
    rows = [
        {"id": "2024-I-1", "problem": "Every morning Aya goes for a 9 kilometer long walk and stops at a coffee shop"},
        {"id": "2024-I-2", "problem": "There exist real numbers x and y, both greater than 1, such that log"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    d = Decontaminator(DecontamConfig(sources=[{"path": str(path), "field": "problem", "id": "id", "name": "aime"}]))
    v = d("Every morning, Aya goes for a 9-kilometer-long walk and stops at a coffee shop afterwards. Speed?")
    assert v.scores == {"benchmark": "aime", "item": "2024-I-1", "ngram": "every morning aya goes for a 9 kilometer",
                        "method": "problem"}  # fmt: skip
    assert d("Every morning I walk.").accepted


def test_user_parquet_source_and_default_ids(tmp_path):
    path = tmp_path / "bench.parquet"
    pq.write_table(pa.table({"question": ["what is the sum of the first one hundred positive odd integers"]}), path)
    name, items = load_source({"path": str(path), "field": "question"})
    assert (name, items) == ("bench", {"0": "what is the sum of the first one hundred positive odd integers"})


def test_bad_sources_say_what_to_fix(tmp_path):
    with pytest.raises(FilterError, match="not found"):
        load_source({"path": str(tmp_path / "missing.jsonl")})
    path = tmp_path / "b.jsonl"
    path.write_text('{"question": "x"}\n')
    with pytest.raises(FilterError, match="field 'problem'"):
        load_source({"path": str(path)})
    problems = DecontamConfig(sources=["mmlu", {"field": "x"}], fields=["answer"], ngram=0).problems()
    assert [p.split(":")[0] for p in problems] == [
        "decontam.ngram", "decontam.min_words", "decontam.fields", "decontam.sources[0]", "decontam.sources[1]"
    ]  # fmt: skip


def test_datasets_source(tmp_path):
    folder = tmp_path / "mybench"
    folder.mkdir()
    problems = ["a train leaves the station at noon travelling at sixty miles per hour towards the city"]
    pq.write_table(pa.table({"problem": problems, "uid": ["q-1"]}), folder / "test.parquet")
    d = Decontaminator(DecontamConfig(sources=[{"hf": str(folder), "id": "uid", "name": "trains"}]))
    v = d("Consider this: A train leaves the station at noon, travelling at sixty miles per hour. When?")
    assert (v.reason, v.scores["benchmark"], v.scores["item"]) == ("contaminated", "trains", "q-1")


def test_invisible_characters_and_fullwidth_letters_do_not_hide_a_leak(builtin):
    """A leak with a zero-width space between every character, in fullwidth letters, or with soft hyphens: each
    split every n-gram before words() folded them (NFKC, format characters dropped)."""
    problem = next(t for t in champ_problems().values() if len(t.split()) > 20)
    zero_width = "\u200b".join(problem)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in problem)
    soft = problem.replace(" ", " \u00ad")
    for text in (zero_width, fullwidth, soft):
        v = builtin(text)
        assert (v.reason, v.scores["benchmark"]) == ("contaminated", "champ"), text[:40]


def test_the_index_filter_passes_every_indexed_hash_and_few_others():
    """`NgramIndex._maybe` skips n-grams before the binary search: it must never skip one the index holds."""
    rng = np.random.default_rng(0)
    held = rng.integers(0, 2**63, 200_000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    index = NgramIndex(held, np.zeros(len(held), np.int32), [("b", "i")], [8])
    assert index._maybe(held).all()
    others = rng.integers(0, 2**63, 200_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)  # even: none held
    assert index._maybe(others).mean() < 0.01
