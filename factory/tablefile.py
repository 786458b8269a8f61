"""`factory filter`'s inputs other than a records file: Parquet and `datasets` folders, read through a field mapping.

A records file names its fields as filters/records.py defines them. A public dataset names them its own way
(OpenR1-Math-220k: problem, answer, generations, uuid), so `--fields prompt=problem,reference=answer,
completion=generations,id=uuid` says which column holds each field (a field left out is read from the column of its
own name, if there is one) and `--task math` gives every row a task. A list in the `completion` column holds
several answers to one problem: each element is a candidate of its own, with the id `ID#K` (K counts from 0), and
they come back adjacent, in element order. Rows count from 0, as `datasets` indexes them.

A Parquet file, a folder of Parquet files (read in name order) or a folder written by `datasets`' `save_to_disk` is
written back as one Parquet file: the input's columns (the completion column holding the element, the id column
`ID#K`) and the verdict: `accepted`, `reason`, and `scores` as a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from factory import textfile
from factory.errors import FactoryError
from filters.records import TASKS

FIELDS = ("id", "task", "prompt", "reference", "completion", "language", "finish_reason", "solution")
VERDICT = ("accepted", "reason", "scores")
ACCEPTED = (
    "JSONL (one JSON object per line), a .parquet file, a folder of .parquet files, or a folder written by datasets'"
    " save_to_disk (state.json and .arrow files)"
)
NOT_JSONL = (".arrow", ".feather", ".csv", ".tsv", ".xlsx", ".gz", ".zst", ".bz2", ".xz", ".zip", ".tar")
BATCH = 256  # rows per Arrow batch read: a row of long generations can hold megabytes


@dataclass
class Fields:
    """Which column holds each record field; `task`: every record's task, whatever its columns say."""

    columns: dict[str, str] = field(default_factory=dict)
    task: str | None = None

    @classmethod
    def parse(cls, spec: str | None, task: str | None) -> Fields | None:
        """`--fields prompt=problem,completion=generations` and `--task`; None when neither is given."""
        if spec is None and task is None:
            return None
        columns, bad = {}, []
        for item in spec.split(",") if spec is not None else []:
            target, eq, column = (s.strip() for s in item.partition("="))
            if not eq or not target or not column:
                bad.append(f"--fields {item.strip()!r}: not FIELD=COLUMN")
            elif target not in FIELDS:
                bad.append(f"--fields {item.strip()!r}: {target!r} is not a record field ({', '.join(FIELDS)})")
            elif target in columns:
                bad.append(f"--fields: {target!r} is mapped twice")
            else:
                columns[target] = column
        if task is not None and task not in TASKS:
            bad.append(f"--task {task!r}: use one of {', '.join(TASKS)}")
        if bad:
            raise FactoryError("; ".join(bad) + "; e.g. --fields prompt=problem,completion=generations --task math")
        return cls(columns, task)

    def of(self, names) -> dict[str, str]:
        """Field -> column for a row with these column names: the mapping, else the column of the field's name."""
        return {f: f for f in FIELDS if f in names} | self.columns


def kind(path: Path) -> str:
    """'jsonl', 'parquet' or 'datasets', or an error naming the path and what `factory filter` reads."""
    if path.is_dir():
        if (path / "state.json").is_file():
            return "datasets"
        if (path / "dataset_dict.json").is_file():
            split = min((p for p in path.iterdir() if (p / "state.json").is_file()), default=path / "train")
            raise FactoryError(f"{path} holds a DatasetDict: name one split's folder, e.g. {split}")
        if any(path.glob("*.parquet")):
            return "parquet"
        raise FactoryError(
            f"{path}: a folder with no state.json and no .parquet files; factory filter reads {ACCEPTED}"
        )
    if not path.is_file():
        raise FactoryError(f"input not found: {path}")
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix.lower() in NOT_JSONL:
        hint = " (for a save_to_disk folder's .arrow file, name the folder)" if path.suffix == ".arrow" else ""
        raise FactoryError(f"{path}: a {path.suffix} file; factory filter reads {ACCEPTED}{hint}")
    return "jsonl"


def check_out(src: Path, out: Path) -> None:
    """OUT is written in the input's format: refuse a name that says the other one."""
    if kind(src) != "jsonl" and out.suffix != ".parquet":
        raise FactoryError(f"--out {out}: {src} is a table, written back as Parquet; name OUT e.g. verdicts.parquet")
    if kind(src) == "jsonl" and out.suffix == ".parquet":
        raise FactoryError(f"--out {out}: {src} is JSONL, written back as JSONL; name OUT e.g. verdicts.jsonl")


def files(path: Path) -> list[Path]:
    """The Parquet or Arrow files of a table input, in order."""
    if path.is_file():
        return [path]
    if kind(path) == "parquet":
        return sorted(path.glob("*.parquet"))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return [path / f["filename"] for f in state["_data_files"]]  # the order load_from_disk concatenates them in


def schema(path: Path) -> pa.Schema:
    """A table file's schema, read from its footer (Parquet) or its stream's head (Arrow)."""
    if path.suffix == ".parquet":
        return pq.read_schema(path)
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_stream(src).schema


def _batches(path: Path, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    if path.suffix == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(BATCH, columns=columns)
        return
    # save_to_disk writes Arrow streams, and load_from_disk only concatenates them: pyarrow reads them as they are
    with pa.memory_map(str(path)) as src:
        for batch in pa.ipc.open_stream(src):
            yield batch.select(columns) if columns is not None else batch


def check_columns(path: Path, fields: Fields) -> dict[str, str]:
    """Field -> column for a table input, or an error listing its columns."""
    first, *more = files(path)
    names = schema(first).names
    for f in more:  # shards of one dataset share a schema; files put side by side may not
        if schema(f).remove_metadata() != schema(first).remove_metadata():
            raise FactoryError(f"{f}: its columns differ from {first}'s; filter them one at a time")
    cols = fields.of(names)
    bad = [f"{f}={c}" for f, c in cols.items() if c not in names]
    if bad:
        missing = ", ".join(c for c in cols.values() if c not in names)
        raise FactoryError(f"--fields {','.join(bad)}: {path} has no column {missing}; its columns: {', '.join(names)}")
    for f in ("prompt", "completion"):
        if f not in cols:
            raise FactoryError(
                f"{path} has no {f} column: name it with --fields {f}=COLUMN; its columns: {', '.join(names)}"
            )
    if "task" not in cols and fields.task is None:
        raise FactoryError(f"{path} has no task column: add --task math (or code, general), or --fields task=COLUMN")
    return cols


def rows(path: Path, columns: list[str] | None = None) -> Iterator[tuple[int, str, dict]]:
    """Each row of the input as a dict of its columns, with its number (a JSONL file's line number, else its index
    over all the files) and where it is ('FILE:LINE' or 'FILE: row N')."""
    if kind(path) == "jsonl":
        yield from ((n, f"{path}:{n}", rec) for n, rec in textfile.json_lines(path))
        return
    n = 0
    for file in files(path):
        start = n
        for batch in _batches(file, columns):
            for row in batch.to_pylist():
                yield n, f"{file}: row {n - start}", row
                n += 1


def records(path: Path, fields: Fields, only_fields: bool = False) -> Iterator[dict]:
    """The records to judge, one per candidate: the record fields, `_where`, `_line` (the key of a record with
    no id) and `_out` (the row to write back). `only_fields`: read only the mapped columns (to check them)."""
    cols = check_columns(path, fields) if kind(path) != "jsonl" else None
    for n, where, row in rows(path, list(dict.fromkeys(cols.values())) if cols and only_fields else None):
        if not isinstance(row, dict):
            raise FactoryError(f"{where}: expected a JSON object, got {type(row).__name__}")
        got = cols or fields.of(row)
        missing = [f"{f}={c}" for f, c in got.items() if c not in row]
        if missing:
            raise FactoryError(f"{where}: no field for --fields {','.join(missing)}; its fields: {', '.join(row)}")
        yield from _candidates(n, where, row, got, fields.task)


def _candidates(n: int, where: str, row: dict, cols: dict[str, str], task: str | None) -> Iterator[dict]:
    rec = {f: row[c] for f, c in cols.items()} | ({"task": task} if task else {})
    if not isinstance(rec.get("completion"), list):  # one candidate; a missing completion is check()'s to name
        yield {**rec, "_where": where, "_line": n, "_out": row}
        return
    for k, text in enumerate(rec["completion"]):
        one = {**rec, "completion": text, "_where": f"{where}, {cols['completion']}[{k}]", "_line": f"{n}#{k}"}
        one["_out"] = {**row, cols["completion"]: text}
        if "id" in cols:
            one["id"] = one["_out"][cols["id"]] = f"{rec['id']}#{k}"
        yield one


def out_schema(path: Path, fields: Fields) -> pa.Schema:
    """The input's columns, the completion column of one element and the id column `ID#K` where it holds lists,
    and the verdict. Without the input's metadata: a `datasets` features header would name the old types."""
    cols, first = check_columns(path, fields), schema(files(path)[0])
    comp, ident = cols["completion"], cols.get("id")
    listed = pa.types.is_list(first.field(comp).type) or pa.types.is_large_list(first.field(comp).type)
    out = []
    for f in first:
        if f.name in VERDICT:
            continue
        if f.name == comp and listed:
            f = pa.field(comp, f.type.value_type)
        elif f.name == ident and listed:
            f = pa.field(ident, pa.string())
        out.append(f)
    return pa.schema([*out, ("accepted", pa.bool_()), ("reason", pa.string()), ("scores", pa.string())])


class ParquetSink:
    """Writes judged rows to one Parquet file (zstd, as factory export writes), a chunk at a time."""

    def __init__(self, out: Path, schema: pa.Schema):
        self.schema = schema
        self.writer = pq.ParquetWriter(out, schema, compression="zstd")

    def write(self, rows: list[dict]) -> None:
        rows = [{**r, "scores": json.dumps(r["scores"])} for r in rows]
        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
