"""Write store rows to Parquet (zstd) or JSONL, split into shards past a size: `factory export` and `publish`.

factory export --out data/sft.parquet                                      # accepted examples, for TRL's SFTTrainer
factory export --what prompts --min-pass-rate 0.2 --max-pass-rate 0.8 --out data/grpo.parquet   # RL prompts
factory export --what rejected --out data/rejected.jsonl --columns prompt,completion,reason
factory export --policy shortest-verified --out data/short.parquet           # a keep-policy's picks (policies.py)

One file when the rows fit in `shard_bytes`; otherwise NAME-00000-of-00003.parquet and so on beside it. Shards are
written into a hidden folder first and moved into place at the end, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from factory.errors import FactoryError

FORMATS = ("parquet", "jsonl")
DEFAULT_SHARD = "500MB"  # what `datasets.push_to_hub` uses: shards the Hub's viewer and loaders handle well
_UNITS = {"": 1, "B": 1, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*", text.upper())
    if not m or float(m[1]) <= 0:
        raise FactoryError(f"--shard-size {text!r}: use a size such as 500MB, 64KB or 2GB")
    return int(float(m[1]) * _UNITS[m[2]])


def fmt_for(out: Path, fmt: str | None) -> str:
    fmt = fmt or ("jsonl" if out.suffix in (".jsonl", ".json") else "parquet")
    if fmt not in FORMATS:
        raise FactoryError(f"--format {fmt!r}: use parquet or jsonl")
    return fmt


def write(batches: pa.RecordBatchReader, out: Path, fmt: str, shard_bytes: int, numbered: bool = False) -> list[Path]:
    """Write every batch to `out` (or its numbered shards); return the files written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        parts = (_parquet if fmt == "parquet" else _jsonl)(batches, tmp, shard_bytes)
        return _place(parts, out, numbered)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pieces(batches: pa.RecordBatchReader, shard_bytes: int) -> Iterator[pa.RecordBatch]:
    """Batches cut so that a shard holds several of them: a shard closes only between batches."""
    for b in batches:
        per = max(1, int(b.num_rows * (shard_bytes / 4) / max(b.nbytes, 1)))
        for i in range(0, max(b.num_rows, 1), per):
            yield b.slice(i, per)


def _parquet(batches: pa.RecordBatchReader, tmp: Path, shard_bytes: int) -> list[Path]:
    parts: list[Path] = []
    sink = writer = None
    for piece in _pieces(batches, shard_bytes):
        if writer is None:
            parts.append(tmp / f"{len(parts):05d}")
            sink = pa.OSFile(str(parts[-1]), "wb")
            writer = pq.ParquetWriter(sink, batches.schema, compression="zstd")
        writer.write_batch(piece)
        if sink.tell() >= shard_bytes:
            writer.close(), sink.close()
            writer = None
    if writer is None and not parts:  # no rows: still a valid, empty file with the columns
        parts.append(tmp / "00000")
        pq.write_table(batches.schema.empty_table(), parts[-1], compression="zstd")
    elif writer is not None:
        writer.close(), sink.close()
    return parts


def _jsonl(batches: pa.RecordBatchReader, tmp: Path, shard_bytes: int) -> list[Path]:
    parts = [tmp / "00000"]
    f = parts[-1].open("w")
    for piece in _pieces(batches, shard_bytes):
        if f.tell() >= shard_bytes:
            f.close()
            parts.append(tmp / f"{len(parts):05d}")
            f = parts[-1].open("w")
        f.writelines(json.dumps(row, default=str, ensure_ascii=False) + "\n" for row in piece.to_pylist())
    f.close()
    return parts


def _place(parts: list[Path], out: Path, numbered: bool) -> list[Path]:
    if len(parts) == 1 and not numbered:
        names = [out]
    else:
        stem, suffix = out.name.split(".", 1) if "." in out.name else (out.name, "")
        suffix = "." + suffix if suffix else ""
        names = [out.with_name(f"{stem}-{i:05d}-of-{len(parts):05d}{suffix}") for i in range(len(parts))]
    for part, name in zip(parts, names, strict=True):
        part.replace(name)
    return names


def picks_table(picks: list) -> pa.RecordBatchReader:
    """A keep-policy's picks (`factory.policies.Pick`) as rows with the examples' `messages`, for `write`."""
    from factory.store.schema import MESSAGES

    cols = ("candidate_id", "prompt_id", "run_id", "task", "source", "messages", "n_tokens", "accepted", "reason")
    types = [pa.string()] * 5 + [MESSAGES, pa.int32(), pa.bool_(), pa.string()]
    schema = pa.schema(list(zip(cols, types, strict=True)))
    table = pa.Table.from_pylist([{c: getattr(p, c) for c in cols} for p in picks], schema=schema)
    return pa.RecordBatchReader.from_batches(schema, table.to_batches(max_chunksize=1024))
