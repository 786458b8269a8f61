"""Prompt sources: reasoning-gym (one family or several), HumanEval, JSONL and Parquet files, with stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory import sources
from factory.errors import FactoryError
from factory.recipe import SourceConfig


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_reasoning_gym_gives_size_prompts_with_answers():
    ps = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=5, seed=3))
    assert len(ps) == 5 and len({p.prompt_id for p in ps}) == 5
    for p in ps:
        assert p.source == "reasoning_gym/basic_arithmetic" and p.task == "math"
        entry = p.reference["reasoning_gym"]
        assert p.prompt == entry["question"] and p.reference["answer"] == entry["answer"]
        assert entry["metadata"]["source_dataset"] == "basic_arithmetic"
        json.dumps(p.reference)  # stored as JSON


def test_reasoning_gym_ids_are_stable():
    cfg = SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=4, seed=1)
    first, again = sources.load(cfg), sources.load(cfg)
    assert [p.prompt_id for p in first] == [p.prompt_id for p in again]
    assert first[0].prompt_id == sources.prompt_id("reasoning_gym/basic_arithmetic", first[0].prompt)
    other = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=4, seed=2))
    assert [p.prompt for p in other] != [p.prompt for p in first]  # the seed picks the problems


def test_reasoning_gym_mixes_families_in_turn():
    cfg = SourceConfig(
        kind="reasoning_gym",
        name=["basic_arithmetic", "chain_sum"],
        size=3,
        config={"chain_sum": {"min_terms": 4, "max_terms": 4}},
    )
    ps = sources.load(cfg)
    assert [p.source.split("/")[1] for p in ps] == ["basic_arithmetic", "chain_sum"] * 3
    sums = [p for p in ps if p.source == "reasoning_gym/chain_sum"]
    assert all(p.reference["reasoning_gym"]["metadata"]["num_terms"] == 4 for p in sums)  # its own config


def test_reasoning_gym_bad_config_is_a_factory_error():
    with pytest.raises(FactoryError, match="source.config for basic_arithmetic"):
        sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=2, config={"colour": 1}))


def test_humaneval():
    ps = sources.load(SourceConfig(kind="humaneval", size=0))
    assert len(ps) == 164 and len({p.prompt_id for p in ps}) == 164
    p = ps[0]
    assert p.task == "code" and p.source == "humaneval" and p.metadata["task_id"] == "HumanEval/0"
    assert p.metadata["solution"].startswith(p.prompt) and "return False" in p.metadata["solution"]  # canonical
    assert set(p.reference) == {"test", "entry_point", "prefix"} and "def check" in p.reference["test"]
    assert p.reference["prefix"] == p.prompt and p.prompt.startswith("from typing import List")  # the prompt's code
    assert f"def {p.reference['entry_point']}(" in p.prompt
    assert len(sources.load(SourceConfig(kind="humaneval", size=10))) == 10  # size caps the other kinds


def test_jsonl_with_field_mapping(tmp_path):
    path = _jsonl(
        tmp_path / "q.jsonl",
        [{"question": "1+1?", "solution": 2, "uid": "a"}, "", {"question": "2+2?", "solution": "4", "uid": "b"}],
    )
    cfg = SourceConfig(
        kind="jsonl", path=str(path), size=0, fields={"prompt": "question", "answer": "solution", "id": "uid"}
    )
    ps = sources.load(cfg)
    assert [p.prompt for p in ps] == ["1+1?", "2+2?"]  # the blank line is skipped
    assert [p.reference for p in ps] == [{"answer": 2}, {"answer": "4"}]
    assert [p.metadata for p in ps] == [{"id": "a"}, {"id": "b"}]
    assert ps[0].source == "jsonl:q.jsonl" and ps[0].task == "math"
    assert ps[0].prompt_id == sources.prompt_id("jsonl:q.jsonl", "1+1?")


def test_jsonl_code_rows_and_task_column(tmp_path):
    path = _jsonl(
        tmp_path / "c.jsonl",
        [{"prompt": "write f", "test": "assert f()", "entry_point": "f", "task": "code"}, {"prompt": "say hi"}],
    )
    a, b = sources.load(SourceConfig(kind="jsonl", path=str(path), task="general"))
    assert a.task == "code" and a.reference == {"test": "assert f()", "entry_point": "f"}
    assert b.task == "general" and b.reference == {}


def test_jsonl_broken_line_names_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "b.jsonl", [{"prompt": "a"}, {"prompt": "b"}, '{"prompt": "c",', {"prompt": "d"}])
    with pytest.raises(FactoryError) as e:
        sources.load(SourceConfig(kind="jsonl", path=str(path)))
    assert f"{path}:3" in str(e.value) and "not valid JSON" in str(e.value)


def test_jsonl_row_that_is_not_an_object(tmp_path):
    path = _jsonl(tmp_path / "b.jsonl", [{"prompt": "a"}, [1, 2]])
    with pytest.raises(FactoryError, match=r"b.jsonl:2: expected a JSON object, got list"):
        sources.load(SourceConfig(kind="jsonl", path=str(path)))


def test_jsonl_missing_prompt_field_names_line_and_field(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", [{"question": "a"}, {"question": "b"}, {"q": "c"}])
    with pytest.raises(FactoryError) as e:
        sources.load(SourceConfig(kind="jsonl", path=str(path), fields={"prompt": "question"}))
    assert f"{path}:3" in str(e.value) and "'question'" in str(e.value) and "source.fields.prompt" in str(e.value)
    with pytest.raises(FactoryError, match=r"m.jsonl:1: field 'prompt' is missing or empty"):
        sources.load(SourceConfig(kind="jsonl", path=str(path)))


ROWS = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?", "answer": "4"}, {"prompt": "Café: 3+3?", "answer": "6"}]
TEXT = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)


def _refused(path: Path) -> str:
    with pytest.raises(FactoryError) as e:
        sources.load(SourceConfig(kind="jsonl", path=str(path)))
    return str(e.value)


def test_jsonl_utf16_export_is_refused_naming_file_and_line(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_bytes(TEXT.encode("utf-16"))  # with its byte-order mark, as Windows' "Unicode" writes it
    msg = _refused(path)
    assert msg.startswith(f"{path}:1: the file is UTF-16") and "must be UTF-8" in msg
    assert f"iconv -f UTF-16 -t UTF-8 {path} > {tmp_path / 'export.utf8.jsonl'}" in msg
    path.write_bytes(TEXT.encode("utf-16-le"))  # no byte-order mark: NUL bytes give it away
    msg = _refused(path)
    assert msg.startswith(f"{path}:1: holds NUL bytes") and "UTF-16" in msg and "re-save it as UTF-8" in msg


def test_jsonl_stray_byte_names_its_line_and_column(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(TEXT.encode().replace("Café".encode(), b"Caf\xe9"))  # one Windows-1252 character on line 3
    msg = _refused(path)
    assert msg.startswith(f"{path}:3: not UTF-8 (byte 0xe9 at column 16)")
    assert "iconv -f CP1252 -t UTF-8" in msg


def test_jsonl_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(TEXT.encode("utf-8-sig"))  # Notepad's and Excel's "UTF-8": the text is UTF-8 all the same
    ps = sources.load(SourceConfig(kind="jsonl", path=str(path)))
    assert [p.prompt for p in ps] == [r["prompt"] for r in ROWS]
    assert ps[0].prompt_id == sources.load(SourceConfig(kind="jsonl", path=str(_jsonl(path, ROWS))))[0].prompt_id


def test_parquet_text_that_is_not_utf8_names_row_and_column(tmp_path):
    path = tmp_path / "p.parquet"
    prompts = pa.array([b"1+1?", b"Caf\xe9: 3+3?"], pa.binary()).view(pa.string())  # a writer that did not check
    pq.write_table(pa.table({"answer": ["2", "6"], "prompt": prompts}), path)
    with pytest.raises(FactoryError) as e:
        sources.load(SourceConfig(kind="parquet", path=str(path)))
    msg = str(e.value)
    assert msg.startswith(f"{path} row 1, column 'prompt': text that is not UTF-8 (byte 0xe9 at byte 4)")
    assert "Parquet strings must be UTF-8" in msg


def test_missing_file_names_the_path(tmp_path):
    for kind in ("jsonl", "parquet"):
        missing = tmp_path / f"nope.{kind}"
        with pytest.raises(FactoryError) as e:
            sources.load(SourceConfig(kind=kind, path=str(missing)))
        assert str(missing) in str(e.value) and "not found" in str(e.value)


def test_empty_file_gives_no_prompts(tmp_path):
    path = _jsonl(tmp_path / "e.jsonl", [""])
    with pytest.raises(FactoryError, match="gave no prompts"):
        sources.load(SourceConfig(kind="jsonl", path=str(path)))


def test_parquet(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": ["x?", "y?", "z?"], "answer": ["1", None, "3"]}), path)
    ps = sources.load(SourceConfig(kind="parquet", path=str(path), fields={"prompt": "text"}))
    assert [p.prompt for p in ps] == ["x?", "y?", "z?"]
    assert [p.reference for p in ps] == [{"answer": "1"}, {}, {"answer": "3"}]
    assert ps[0].source == "parquet:p.parquet"
    with pytest.raises(FactoryError, match=r"p.parquet row 0: field 'prompt' is missing"):
        sources.load(SourceConfig(kind="parquet", path=str(path)))
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(FactoryError, match="not a readable Parquet file"):
        sources.load(SourceConfig(kind="parquet", path=str(bad)))


def test_limit_and_size(tmp_path):
    rg = SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=6)
    assert [p.prompt_id for p in sources.load(rg, limit=2)] == [p.prompt_id for p in sources.load(rg)[:2]]
    path = _jsonl(tmp_path / "n.jsonl", [{"prompt": f"q{i}"} for i in range(10)])
    assert len(sources.load(SourceConfig(kind="jsonl", path=str(path), size=0))) == 10
    assert len(sources.load(SourceConfig(kind="jsonl", path=str(path), size=4))) == 4
    assert [p.prompt for p in sources.load(SourceConfig(kind="jsonl", path=str(path), size=0), limit=3)] == [
        "q0",
        "q1",
        "q2",
    ]


def test_hf_datasets_source_on_a_local_folder(tmp_path):
    """`datasets.load_dataset` on a folder of JSONL: the same code path as a hub dataset, without the network."""
    folder = tmp_path / "ds"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [{"problem": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(5)])
    cfg = SourceConfig(
        kind="hf", path=str(folder), split="train", size=3, fields={"prompt": "problem", "answer": "solution"}
    )
    ps = sources.load(cfg)
    assert [p.prompt for p in ps] == ["What is 0 + 1?", "What is 1 + 1?", "What is 2 + 1?"]
    assert ps[2].reference == {"answer": "3"} and ps[0].source == f"hf:{folder}"
    assert ps == sources.load(cfg)  # stable ids
