"""Keep-policies: which of the store's candidates become SFT data, each a named SQL condition over every candidate.

The store keeps every candidate with its verdict, so which answers to train on is a query, decided after generation:

    factory export --policy shortest-verified --out data/short.parquet
    factory train sft recipes/sft_tiny.yaml --set data.policy=all
    factory ablate recipes/ablate/arithmetic.yaml          # train on each, measure which teaches best

A policy is a name, with an argument after a colon for some (`k-per-prompt:4`, `pass-rate:0.2-0.8`). Its condition
is evaluated over the pool (`StoreReader.picked`): every candidate with the columns `candidate_id, run_id,
prompt_id, sample_index, source, task, prompt, completion, n_tokens, finish_reason, accepted, reason, scores,
example_id, messages, created_at, pass_rate`, after a recipe's `data.where` (a SQL condition on those columns, e.g.
`task = 'math' AND n_tokens < 2048`) has narrowed it. `any` with a `where` is a policy of your own.

A rejected candidate has no `examples` row: its chat is built here, from its run's recipe (template, system message,
think) and its text, as `factory.chat` builds an accepted one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from factory.chat import assistant_text
from factory.errors import FactoryError
from factory.recipe import PromptConfig


@dataclass
class Policy:
    condition: str  # SQL over the pool's columns and ranks; {arg} is the policy's argument
    selects: str  # what it keeps, in a sentence (`factory ablate --help`, docs/ablate.md)
    default: str | None = None  # the argument when none is given; None: it takes none


# the ranks: nth_accepted and nth_shortest count a prompt's accepted candidates (in commit order, by length),
# nth_sample all its samples, spread orders one reason's candidates one per prompt first, n_examples counts the pool's
# examples
POLICIES = {
    "verified": Policy(
        "example_id IS NOT NULL",
        "the store's examples: answers that passed every filter, at most accept_per_prompt a prompt (the default)",
    ),
    "all": Policy(
        "finish_reason IS DISTINCT FROM 'length'",
        "every candidate that finished (not cut off at max_tokens), right or wrong: no answer filter, as OpenThoughts3",
    ),
    "verified+wrong": Policy(
        "example_id IS NOT NULL OR (reason = 'wrong_answer' AND spread <= floor(n_examples * {arg} / (1 - {arg})))",
        "the examples plus wrong-answer traces (one a prompt first), the wrong ones at most SHARE of the whole",
        "0.5",
    ),
    "one-per-prompt": Policy("accepted AND nth_accepted = 1", "each prompt's first accepted candidate"),
    "k-per-prompt": Policy(
        "accepted AND nth_accepted <= {arg}",
        "each prompt's first K accepted candidates, those past accept_per_prompt too",
        "4",
    ),
    "shortest-verified": Policy("accepted AND nth_shortest = 1", "each prompt's shortest accepted candidate"),
    "first-sample": Policy(
        "nth_sample = 1 AND finish_reason IS DISTINCT FROM 'length'",
        "each prompt's first sample, right or wrong, if it finished: one unverified answer a prompt",
    ),
    "wrong": Policy("reason = 'wrong_answer'", "only the traces whose final answer the verifier found wrong"),
    "pass-rate": Policy(
        "example_id IS NOT NULL AND pass_rate BETWEEN {lo} AND {hi}",
        "the examples of prompts whose pass rate over their samples lies in LOW-HIGH (a difficulty window)",
        "0.0-1.0",
    ),
    "max-tokens": Policy("example_id IS NOT NULL AND n_tokens <= {arg}", "the examples of at most N tokens", "1024"),
    "any": Policy("true", "every candidate, cut off or not: with data.where, a policy of your own"),
}


def condition(name: str) -> str:
    """The SQL condition of `name` (`NAME` or `NAME:ARG`), its argument checked; a FactoryError names what is
    allowed."""
    base, _, arg = name.partition(":")
    pol = POLICIES.get(base)
    if pol is None:
        raise FactoryError(f"policy {name!r} is not one of {', '.join(POLICIES)} (factory ablate --help says each)")
    if pol.default is None:
        if arg:
            raise FactoryError(f"policy {name!r}: {base} takes no argument")
        return pol.condition
    arg = arg or pol.default
    values = _numbers(base, arg)
    if values is None:
        want = {"pass-rate": "LOW-HIGH with 0 <= LOW <= HIGH <= 1", "verified+wrong": "a share in [0, 1)"}
        raise FactoryError(f"policy {name!r}: {arg!r} is not {want.get(base, 'a whole number >= 1')}")
    if base == "pass-rate":
        return pol.condition.format(lo=values[0], hi=values[1])
    return pol.condition.format(arg=values[0])


def _numbers(base: str, arg: str) -> list[float] | None:
    """A policy's argument as numbers, or None when it is not what the policy takes."""
    try:
        if base == "pass-rate":
            lo, hi = (float(x) for x in arg.split("-"))
            return [lo, hi] if 0 <= lo <= hi <= 1 else None
        if base == "verified+wrong":
            return [float(arg)] if 0 <= float(arg) < 1 else None
        return [int(arg)] if int(arg) >= 1 else None
    except ValueError:
        return None


@dataclass
class Pick:
    """One candidate a policy picked, as SFT reads it."""

    candidate_id: str
    prompt_id: str
    run_id: str
    task: str
    source: str
    messages: list[dict]
    n_tokens: int
    accepted: bool
    reason: str | None


def pick(db: Path, policy: str = "verified", where: str | None = None, shuffle: int | None = None) -> list[Pick]:
    """Every candidate the policy picks from the store at `db`, each with its chat, in commit (or shuffled) order."""
    from factory.store import StoreReader

    cond = condition(policy)
    with StoreReader(db) as store:
        rows = store.picked(cond, where, shuffle)
        prompts = {run: _prompt_config(text) for run, text in store.run_prompts().items()} if rows else {}
    return [
        Pick(
            *(r[k] for k in ("candidate_id", "prompt_id", "run_id", "task", "source")),
            _chat(r, prompts[r["run_id"]]),
            r["n_tokens"] or 0,
            r["accepted"],
            r["reason"],
        )
        for r in rows
    ]


def budget(picks: list[Pick], examples: int | None = None, tokens: int | None = None) -> list[Pick]:
    """The first picks within the budget: at most `examples` of them and `tokens` reply tokens in all."""
    out, spent = [], 0
    for p in picks[:examples]:
        if tokens is not None and spent + p.n_tokens > tokens:
            break
        out.append(p)
        spent += p.n_tokens
    return out


def _prompt_config(recipe_text: str) -> PromptConfig:
    raw = (yaml.safe_load(recipe_text or "") or {}).get("prompt") or {}
    return PromptConfig(**{k: raw[k] for k in ("system", "template", "think") if k in raw})


def _chat(row: dict, cfg: PromptConfig) -> list[dict]:
    """An example's messages as stored; another candidate's, as `factory.chat.example` would have written them."""
    if row["messages"] is not None:
        return [dict(m) for m in row["messages"]]
    system = [{"role": "system", "content": cfg.system}] if cfg.system else []
    user = {"role": "user", "content": cfg.template.replace("{prompt}", row["prompt"])}
    return [*system, user, {"role": "assistant", "content": assistant_text(row["completion"] or "", cfg.think)}]
