"""`factory filter` on public datasets' own shapes: Parquet and `datasets` folders, columns mapped with --fields, a
list of generations judged element by element and written back in the input's format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli


def _gen(answer: str) -> str:
    """A generation shaped as OpenR1-Math-220k's are: reasoning in think tags, then the boxed answer."""
    return f"<think>\nWork it out step by step and check it once.\n</think>\nSo the answer is $\\boxed{{{answer}}}$."


WRONG = (False, "wrong_answer")
# a few of OpenR1-Math-220k's columns: each problem with its reference answer and its generations' boxed answers,
# and the verdict each generation must get
PROBLEMS = {
    "What is 65 times 50?": ("3250", [("3250", True, None), ("3200", *WRONG), ("3250.0", True, None)]),
    "What is half of one?": ("\\frac{1}{2}", [("0.6", *WRONG), ("\\frac12", True, None)]),
    "What is 7 plus 5?": ("12", [("12", True, None), ("13", *WRONG)]),
}
FIELDS = "prompt=problem,reference=answer,completion=generations,id=uuid"
COLUMNS = ["problem", "solution", "answer", "generations", "correctness_math_verify", "uuid"]


def _rows(copies: int = 1) -> list[dict]:
    return [
        {
            "problem": p,
            "solution": f"Compute: {a}.",
            "answer": a,
            "generations": [_gen(g) for g, _, _ in gens],
            "correctness_math_verify": [ok for _, ok, _ in gens],
            "uuid": f"u{c}-{i}",
        }
        for c in range(copies)
        for i, (p, (a, gens)) in enumerate(PROBLEMS.items())
    ]


def _expected(rows: list[dict]) -> list[tuple]:
    """(id, accepted, reason) per generation: a problem's together, in element order."""
    return [(f"{r['uuid']}#{k}", ok, why) for r in rows for k, (_, ok, why) in enumerate(PROBLEMS[r["problem"]][1])]


def _filter(src, out, *extra: str):
    return run_cli("filter", str(src), "--out", str(out), "--fields", FIELDS, "--task", "math", *extra, timeout=300)


def _check_parquet(out, rows: list[dict]) -> None:
    t = pq.read_table(out)
    assert t.column_names == [*COLUMNS, "accepted", "reason", "scores"]
    assert t.schema.field("generations").type == pa.string() and t.schema.field("uuid").type == pa.string()
    back = t.to_pylist()
    assert [(r["uuid"], r["accepted"], r["reason"]) for r in back] == _expected(rows)
    by_id = {r["uuid"]: r for r in rows}
    for r in back:  # the row is the input's, with the one generation judged in the generations column
        uuid, k = r["uuid"].split("#")
        src = by_id[uuid]
        assert r["generations"] == src["generations"][int(k)]
        assert r["problem"] == src["problem"] and r["correctness_math_verify"] == src["correctness_math_verify"]
        assert json.loads(r["scores"]) == {"correct": 1.0 if r["accepted"] else 0.0}


def test_parquet_generations_are_judged_one_by_one_and_kept_together(tmp_path):
    rows = _rows(40)  # 280 candidates: more than one chunk, a problem's generations across the boundary
    src, out = tmp_path / "openr1.parquet", tmp_path / "out" / "verdicts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    res = _filter(src, out)
    assert res.returncode == 0, res.stderr
    _check_parquet(out, rows)
    assert "280 records, 160 accepted" in res.stderr and "rejected: wrong_answer 120" in res.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["verdicts.parquet"]  # no .part left


def test_a_datasets_folder_is_read_and_written_back_as_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = _rows(2)
    src, out = tmp_path / "openr1", tmp_path / "verdicts.parquet"
    datasets.Dataset.from_list(rows).save_to_disk(str(src), num_shards=2)  # shards read in the state's order
    assert len(list(src.glob("*.arrow"))) == 2
    res = _filter(src, out)
    assert res.returncode == 0, res.stderr
    _check_parquet(out, rows)
    assert datasets.Dataset.from_parquet(str(out)).num_rows == 14  # the output reads back without its old features


def test_jsonl_with_fields_expands_the_list_and_stays_jsonl(tmp_path):
    rows = _rows(1)
    src, out = tmp_path / "openr1.jsonl", tmp_path / "verdicts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = _filter(src, out)
    assert res.returncode == 0, res.stderr
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["uuid"], r["accepted"], r["reason"]) for r in back] == _expected(rows)
    assert back[1]["generations"] == _gen("3200") and back[1]["scores"] == {"correct": 0.0}


def _refused(src, out, *args: str) -> str:
    res = run_cli("filter", str(src), "--out", str(out), *args, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "error:" in res.stderr, res.stderr
    assert not out.exists()
    return res.stderr


def test_bad_fields_and_inputs_are_refused_naming_the_columns(tmp_path):
    src, out = tmp_path / "openr1.parquet", tmp_path / "verdicts.parquet"
    pq.write_table(pa.Table.from_pylist(_rows(1)), src)
    columns = "its columns: " + ", ".join(COLUMNS)

    err = _refused(src, out, "--fields", "prompt=problem,answer=answer,oops", "--task", "math")
    assert "--fields 'answer=answer': 'answer' is not a record field (id, task, prompt, reference," in err
    assert "--fields 'oops': not FIELD=COLUMN" in err
    err = _refused(src, out, "--fields", "prompt=problem,reference=answr,completion=generations", "--task", "math")
    assert f"--fields reference=answr: {src} has no column answr; {columns}" in err
    err = _refused(src, out, "--fields", "reference=answer,completion=generations", "--task", "math")
    assert f"{src} has no prompt column: name it with --fields prompt=COLUMN; {columns}" in err
    err = _refused(src, out, "--fields", FIELDS)
    assert f"{src} has no task column: add --task math" in err
    assert "--task 'maths': use one of math, code, general" in _refused(src, out, "--fields", FIELDS, "--task", "maths")
    err = _refused(src, tmp_path / "verdicts.jsonl", "--fields", FIELDS, "--task", "math")
    assert "is a table, written back as Parquet; name OUT e.g. verdicts.parquet" in err

    (tmp_path / "notes").mkdir()
    err = _refused(tmp_path / "notes", out)
    assert f"{tmp_path / 'notes'}: a folder with no state.json and no .parquet files; factory filter reads JSONL" in err
    (tmp_path / "t.csv").write_text("a,b\n")
    assert f"{tmp_path / 't.csv'}: a .csv file; factory filter reads JSONL" in _refused(tmp_path / "t.csv", out)


def test_a_bad_generation_is_refused_by_row_and_element(tmp_path):
    rows = _rows(1)
    rows[1]["generations"][1] = None
    src, out = tmp_path / "openr1.parquet", tmp_path / "verdicts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    err = _refused(src, out, "--fields", FIELDS, "--task", "math")
    assert f"{src}: row 1, generations[1]: completion: missing or not a string" in err


def test_help_shows_the_think_tag():
    """The help is markdown: a bare <think> would be read as an HTML tag and dropped."""
    res = run_cli("filter", "--help", timeout=60, COLUMNS="200")
    assert res.returncode == 0, res.stderr
    assert "Completions reason in <think> (default: detect)." in res.stdout
    assert "save_to_disk" in res.stdout and "--fields" in res.stdout
