"""Keep-policies over a real store: a replayed run (tests/factory/data/policy_answers.jsonl) puts four sums through
the real filters, four samples each: right answers of different lengths, wrong ones, one cut off. Each policy picks
exactly the candidates it says it does, a rejected candidate's chat is built as an example's, and `factory export
--policy` writes what the policy picks."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_cli

from factory import policies
from factory.errors import FactoryError
from trainers.data import sft_rows
from trainers.recipe import SFTData, SFTRecipe, load

ANSWERS = ROOT / "tests" / "factory" / "data" / "policy_answers.jsonl"
SETS = ["rejection.round_size=4", "rejection.max_samples=4", "engine.kind=replay", f"engine.replay={ANSWERS}"]
REPLAY = ["--limit", "4", *(a for s in SETS for a in ("--set", s))]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("policies") / "store.duckdb"
    res = run_cli("generate", str(ROOT / "recipes" / "arithmetic_demo.yaml"), "--db", str(path), *REPLAY)
    assert res.returncode == 0, res.stderr[-3000:]
    return path


def replies(db, name: str, where: str | None = None) -> list[str]:
    return [p.messages[-1]["content"] for p in policies.pick(db, name, where)]


def test_each_policy_picks_what_it_says(db):
    # the verifier's verdicts, per prompt in sample order (accept_per_prompt 1: each prompt's first right answer is
    # the example; later right ones are candidates only)
    right = ["0 - 4 = -4", "-4", "4 - 1 = 3", "3", "1 + 5 = 6", "6", "Adding 1 and 5 gives 6."]
    wrong = ["0 - 4 = 4", "4 - 1 = 5", "4 - 1 = 2", "1 + 5 = 7", "5 - 9 = 4", "-3", "5 - 9 = 14", "4"]
    assert replies(db, "verified") == ["0 - 4 = -4", "4 - 1 = 3", "1 + 5 = 6"]
    assert replies(db, "one-per-prompt") == replies(db, "verified")
    assert replies(db, "k-per-prompt:2") == ["0 - 4 = -4", "-4", "4 - 1 = 3", "3", "1 + 5 = 6", "6"]
    assert sorted(replies(db, "k-per-prompt")) == sorted(right)
    assert replies(db, "shortest-verified") == ["-4", "3", "6"]
    assert replies(db, "first-sample") == ["0 - 4 = 4", "4 - 1 = 5", "1 + 5 = 6", "5 - 9 = 4"]
    assert sorted(replies(db, "wrong")) == sorted(wrong)
    assert sorted(replies(db, "all")) == sorted(right + wrong)  # the cut-off one left out
    assert len(replies(db, "any")) == 16 and "0 - 4 is the same as" in replies(db, "any")
    assert replies(db, "pass-rate:0-0.5") == ["0 - 4 = -4", "4 - 1 = 3"]  # 2 of 4 passed; 1 + 5 had 3 of 4
    assert replies(db, "max-tokens:5") == ["4 - 1 = 3", "1 + 5 = 6"]


def test_verified_plus_wrong_keeps_the_share_and_spreads_over_prompts(db):
    for share, n_wrong in (("0.25", 1), ("0.5", 3), ("0.7", 7)):  # floor(3 examples * s / (1 - s))
        picks = policies.pick(db, f"verified+wrong:{share}")
        bad = [p for p in picks if not p.accepted]
        assert len(picks) - len(bad) == 3 and len(bad) == n_wrong and {p.reason for p in bad} == {"wrong_answer"}
    bad = [p for p in policies.pick(db, "verified+wrong:0.5") if not p.accepted]
    assert len({p.prompt_id for p in bad}) == 3  # one a prompt before a second from any


def test_where_narrows_the_pool_before_the_ranks(db):
    assert replies(db, "shortest-verified", "n_tokens > 2") == ["0 - 4 = -4", "4 - 1 = 3", "1 + 5 = 6"]
    assert replies(db, "all", "NOT accepted AND prompt LIKE '%5 - 9%'") == ["5 - 9 = 4", "-3", "5 - 9 = 14", "4"]
    with pytest.raises(FactoryError, match="no_such_column"):
        policies.pick(db, "all", "no_such_column = 1")


def test_a_rejected_candidates_chat_is_built_as_an_examples(db):
    examples = {p.prompt_id: p.messages for p in policies.pick(db, "verified")}
    for p in policies.pick(db, "any"):
        if p.prompt_id in examples:
            assert p.messages[:-1] == examples[p.prompt_id][:-1]
        assert p.messages[0] == {"role": "user", "content": p.messages[0]["content"]}
        assert p.messages[0]["content"].endswith("\nGive only the final answer.")  # the run's template
        assert p.messages[-1]["role"] == "assistant"


def test_budgets_cut_the_picks_in_their_order(db):
    picks = policies.pick(db, "all")
    assert policies.budget(picks, examples=4) == picks[:4]
    cut = policies.budget(picks, tokens=12)
    assert sum(p.n_tokens for p in cut) <= 12 < sum(p.n_tokens for p in picks[: len(cut) + 1])
    one, other = policies.pick(db, "all", shuffle=1), policies.pick(db, "all", shuffle=2)
    assert one == policies.pick(db, "all", shuffle=1) and one != other and one != picks
    assert {p.candidate_id for p in one} == {p.candidate_id for p in picks}


def test_sft_data_follows_the_policy_and_its_budget(db):
    rows = sft_rows(db, SFTData(policy="all", limit=5, shuffle=3))
    assert len(rows) == 5
    first = policies.pick(db, "all", shuffle=3)[:5]
    assert [r["completion"][0]["content"] for r in rows] == [p.messages[-1]["content"] for p in first]
    assert len(sft_rows(db, SFTData())) == 3  # verified: the examples, as before policies


def test_bad_policies_are_named(tmp_path):
    bad = {
        "best": "not one of verified, all",
        "verified:2": "takes no argument",
        "k-per-prompt:0": "a whole number >= 1",
        "pass-rate:0.8-0.2": "LOW-HIGH",
        "verified+wrong:1": "a share in [0, 1)",
    }
    for name, part in bad.items():
        with pytest.raises(FactoryError, match=part.replace("[", r"\[").replace(")", r"\)")):
            policies.condition(name)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {policy: best, tokens: 0}\n")
    with pytest.raises(FactoryError) as e:
        load(SFTRecipe, recipe)
    assert "data.policy: policy 'best'" in str(e.value) and "data.tokens: 0" in str(e.value)


def test_export_writes_a_policys_picks(db, tmp_path):
    out = tmp_path / "short.jsonl"
    res = run_cli("export", "--db", str(db), "--policy", "shortest-verified", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == ["-4", "3", "6"]
    assert all(r["accepted"] and r["n_tokens"] >= 1 for r in rows)
    res = run_cli("export", "--db", str(db), "--policy", "wrong", "--where", "n_tokens < 3", "--out", str(out))
    assert (
        res.returncode == 0 and [json.loads(x)["reason"] for x in out.read_text().splitlines()] == ["wrong_answer"] * 2
    )
    res = run_cli("export", "--db", str(db), "--policy", "all", "--what", "prompts", "--out", str(out))
    assert res.returncode == 2 and "--policy picks its own rows" in res.stdout + res.stderr
