"""Provenance per example: the model's fingerprint, the engine, the verifiers' versions and whether a judge decided,
recorded with the run and carried by the export and the dataset card."""

from __future__ import annotations

import json
from importlib import metadata

from conftest import run_cli

from factory import provenance, sources


def test_a_model_fingerprint_tells_checkpoints_apart_without_reading_them_whole(tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text('{"hidden_size": 8}')
    (m / "model.safetensors").write_bytes(b"\1" * (3 << 20))
    first = provenance.fingerprint(str(m))
    (m / "notes.txt").write_text("not the model")
    assert provenance.fingerprint(str(m)) == first  # only the model's own files count
    (m / "model.safetensors").write_bytes(b"\1" * 100 + b"\2" + b"\1" * ((3 << 20) - 101))
    assert provenance.fingerprint(str(m))["sha256"] != first["sha256"]  # a weight changed in the first MiB
    (m / "config.json").write_text('{"hidden_size": 9}')
    assert len({provenance.fingerprint(str(m))["sha256"], first["sha256"]}) == 2
    assert provenance.fingerprint("someone/a-hub-model") == {"name": "someone/a-hub-model", "sha256": None}


def test_every_exported_example_says_what_made_and_judged_it(demo_store, tmp_path):
    out = tmp_path / "x.jsonl"
    res = run_cli("export", "--db", str(demo_store), "--out", str(out), "--format", "jsonl")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows
    for r in rows:
        v = r["verifiers"] if isinstance(r["verifiers"], dict) else json.loads(r["verifiers"])
        assert v["math-verify"] == metadata.version("math-verify") and v["sympy"] == metadata.version("sympy")
        assert len(v["code_harness"]) == 12 and r["judged"] is False
        assert r["generator"] == "smollm2-135m-instruct" and r["engine_version"]
        assert r["source_license"] == sources.RG_LICENSE
    folder = tmp_path / "card"
    res = run_cli("publish", "--db", str(demo_store), "--repo-id", "someone/demo", "--dry-run", str(folder))
    assert res.returncode == 0, res.stderr[-3000:]
    card = (folder / "README.md").read_text()
    assert f"judged with math-verify {metadata.version('math-verify')}" in card and "`model_sha256`" in card
    assert "`source_license`" in card


def test_each_prompt_keeps_its_sources_license(tmp_path):
    """Registered sets carry the registry's license, packaged ones theirs; a file's prompts carry the recipe's
    `source.license`, or none; and the license is a note on the prompts, not part of the recipe's identity."""
    from factory import benchmarks
    from factory.recipe import SourceConfig, parse

    # a registered set whose file ships in a package (the others' files are brought by `factory benchmarks --import`)
    [reg] = sources.load(SourceConfig(kind="benchmark", name="humaneval", split="test"), limit=1)
    assert reg.metadata["license"] == " ".join(benchmarks.get("humaneval").license.split()) != ""
    [he] = sources.load(SourceConfig(kind="humaneval"), limit=1)
    assert he.metadata["license"] == sources.HUMANEVAL_LICENSE
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "What is 2 + 2?", "answer": "4"}) + "\n")
    [plain] = sources.load(SourceConfig(kind="jsonl", path=str(f)))
    [mine] = sources.load(SourceConfig(kind="jsonl", path=str(f), license="CC BY 4.0 (my lab)"))
    assert "license" not in plain.metadata and mine.metadata["license"] == "CC BY 4.0 (my lab)"
    assert plain.prompt_id == mine.prompt_id
    base = {"source": {"kind": "jsonl", "path": str(f)}}
    assert parse(base).hash() == parse({"source": {**base["source"], "license": "CC BY 4.0"}}).hash()
