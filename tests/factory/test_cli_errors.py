"""The real `factory` command on bad input: a clear message, exit code 2, no traceback, nothing left in the store.

Every recipe here names an OpenAI-compatible engine on a closed port and no bundled model, so even a check that
regressed could not load vLLM or convert a model: these tests stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from factory.store import Batch, StoreReader, StoreWriter

SAFE = {"model": "no-such-model", "engine": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "retries": 1}}


def _recipe(tmp_path: Path, **raw) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(SAFE | raw))
    return path


def _fails(*args: str) -> str:
    res = run_cli(*args, timeout=60, COLUMNS="80")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "error:" in res.stderr
    return res.stderr


def _runs(db: Path) -> int:
    if not db.exists():
        return 0
    store = StoreReader(db)
    try:
        return store.query("SELECT count(*) FROM runs")[1][0][0]
    finally:
        store.close()


def test_a_bad_recipe_lists_every_problem(tmp_path):
    recipe = _recipe(
        tmp_path,
        source={"kind": "reasoning_gym", "name": "basic_arithmetc", "size": 4},
        colour="red",
        filters=["format", "dedupe"],
        sampling={"temperature": "hot"},
    )
    db = tmp_path / "store" / "f.duckdb"
    err = _fails("generate", str(recipe), "--db", str(db))
    assert f"{recipe}: 4 problem(s)" in err
    for line in ("colour: unknown key", "source.name: 'basic_arithmetc' is not a reasoning-gym task family",
                 "did you mean basic_arithmetic", "filters[1]: 'dedupe' is not a filter",
                 "sampling.temperature: 'hot' is not a number"):  # fmt: skip
        assert line in err
    assert not db.exists() and not db.parent.exists()


def test_a_bad_override(tmp_path):
    recipe = _recipe(tmp_path, source={"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 2})
    db = tmp_path / "f.duckdb"
    err = _fails("generate", str(recipe), "--db", str(db), "--set", "rejection.max_samples=lots", "--set", "x=[")
    assert "--set 'x=['" in err and "not valid YAML" in err
    assert not db.exists()


def test_a_missing_recipe(tmp_path):
    missing = tmp_path / "nowhere" / "[draft] job.yaml"  # brackets are text, not markup
    assert f"recipe not found: {missing}" in _fails("generate", str(missing), "--db", str(tmp_path / "f.duckdb"))
    assert not (tmp_path / "f.duckdb").exists()


def test_a_broken_jsonl_line_names_file_and_line(tmp_path):
    data = tmp_path / "a rather long folder name to make the path wrap" / "prompts.jsonl"
    data.parent.mkdir()
    data.write_text('{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?", "answer": "4"}\n{"prompt": "3+3?",\n')
    recipe = _recipe(tmp_path, source={"kind": "jsonl", "path": str(data)})
    db = tmp_path / "f.duckdb"
    StoreWriter(db).close()  # an existing store: it must get no run
    err = _fails("generate", str(recipe), "--db", str(db))
    assert f"{data}:3: not valid JSON" in err  # whole, not wrapped at 80 columns
    assert _runs(db) == 0


def test_a_missing_prompt_field(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"question": "1+1?"}) + "\n")
    recipe = _recipe(tmp_path, source={"kind": "jsonl", "path": str(data)})
    err = _fails("generate", str(recipe), "--db", str(tmp_path / "f.duckdb"))
    assert f"{data}:1: field 'prompt' is missing or empty" in err
    assert not (tmp_path / "f.duckdb").exists()


def test_a_missing_benchmark_file(tmp_path):
    missing = tmp_path / "aime24.jsonl"
    source = {"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 2}
    decontam = {"sources": [{"path": str(missing)}]}
    recipe = _recipe(tmp_path, source=source, filters=["format", "verify", "decontam"], decontam=decontam)
    db = tmp_path / "f.duckdb"
    assert f"decontam source file not found: {missing}" in _fails("generate", str(recipe), "--db", str(db))
    assert _runs(db) == 0


def test_query_errors(tmp_path):
    db = tmp_path / "f.duckdb"
    store = StoreWriter(db)
    store.commit(Batch([{"prompt_id": "p", "source": "s", "task": "math", "prompt": "[/INST] q", "reference": "{}",
                         "metadata": "{}"}], [], []))  # fmt: skip
    store.close()
    err = _fails("query", "SELEC nonsense", "--db", str(db))
    assert "query failed" in err and "syntax error" in err.lower()
    assert "use table, csv or json" in _fails("query", "SELECT 1", "--db", str(db), "--format", "xml")

    res = run_cli("query", "SELECT prompt FROM prompts", "--db", str(db), timeout=60)
    assert res.returncode == 0 and "[/INST] q" in res.stdout  # model text with brackets prints as it is
    res = run_cli("query", "SELECT prompt_id, task FROM prompts", "--db", str(db), "--format", "json", timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout) == {"prompt_id": "p", "task": "math"}


@pytest.mark.parametrize("command", [["stats"], ["query", "SELECT 1"], ["export", "--out", "x.parquet"]])
def test_reading_a_missing_store(tmp_path, command):
    db = tmp_path / "none.duckdb"
    err = _fails(*command, "--db", str(db))
    assert f"no store at {db}" in err and "factory generate" in err
    assert not db.exists()


def test_help():
    res = run_cli("--help", timeout=60)
    assert res.returncode == 0 and all(c in res.stdout for c in ("generate", "stats", "query", "export"))
    res = run_cli("generate", "--help", timeout=60, COLUMNS="200")
    assert res.returncode == 0
    for option in ("--limit", "--set", "--new-run", "--db"):
        assert option in res.stdout
    # paragraphs flow to the terminal's width, not broken where the docstring's lines end ("samples" / "already")
    assert "finished prompts are skipped and samples already drawn count toward max_samples" in res.stdout
    res = run_cli("export", "--help", timeout=60, COLUMNS="200")
    assert res.returncode == 0 and sum(line.lstrip().startswith("• ") for line in res.stdout.splitlines()) == 3


def test_a_model_folder_that_is_not_there(tmp_path):
    recipe = _recipe(tmp_path, source={"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 2})
    db = tmp_path / "f.duckdb"
    err = _fails("generate", str(recipe), "--db", str(db), "--set", f"model={tmp_path / 'nowhere'}", "--set",
                 "engine.kind=vllm")  # fmt: skip
    assert "is not a model folder" in err and "nowhere" in err
    assert _runs(db) == 0


@pytest.mark.parametrize(
    "encode, says",
    [
        (lambda t: t.encode("utf-16"), ":1: the file is UTF-16 (it starts with a UTF-16 byte-order mark)"),
        (lambda t: t.encode().replace("Café".encode(), b"Caf\xe9"), ":3: not UTF-8 (byte 0xe9 at column 16)"),
    ],
    ids=["utf16_export", "stray_byte_on_line_3"],
)
def test_a_prompt_file_that_is_not_utf8_names_file_and_line(tmp_path, encode, says):
    data = tmp_path / "prompts.jsonl"
    rows = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?", "answer": "4"}, {"prompt": "Café: 3+3?"}]
    data.write_bytes(encode("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)))
    recipe = _recipe(tmp_path, source={"kind": "jsonl", "path": str(data)})
    db = tmp_path / "f.duckdb"
    StoreWriter(db).close()
    err = _fails("generate", str(recipe), "--db", str(db))
    assert f"{data}{says}" in err and "must be UTF-8" in err and "re-save it as UTF-8" in err
    assert _runs(db) == 0


def test_a_recipe_without_a_source_says_how_to_add_one(tmp_path):
    recipe = _recipe(tmp_path, filters=["format", "verify"])  # a filter-only recipe
    db = tmp_path / "f.duckdb"
    err = _fails("generate", str(recipe), "--db", str(db))
    assert f"{recipe}: 1 problem(s)" in err and "source: missing; factory generate needs prompts to sample" in err
    assert "`source: {kind: jsonl, path: prompts.jsonl}`" in err and "only factory filter" in err
    assert not db.exists()


def test_every_command_is_there_from_the_script_and_as_a_module():
    """`factory` and `python -m factory.cli` (how the benchmarks start it) list the same commands, all of them."""
    import subprocess
    import sys

    from conftest import FACTORY

    names = ["generate", "run", "train", "benchmarks", "eval", "filter"]
    names += ["stats", "query", "export", "publish", "report", "audit"]
    for argv in ([FACTORY], [sys.executable, "-m", "factory.cli"]):
        out = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120).stdout
        listed = [line.split()[1] for line in out.splitlines() if line.startswith("│ ") and len(line.split()) > 2]
        assert [n for n in listed if n in names] == names, argv
