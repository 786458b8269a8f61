"""Reading a user's text files (records, prompts, recipes): UTF-8, line by line, every error naming file and line.

A UTF-8 byte-order mark at the start is accepted and dropped: Notepad and Excel ("CSV UTF-8") write one, and the text
is UTF-8 all the same. Anything else that is not UTF-8 is refused before any work: UTF-16 and UTF-32 (Windows'
"Unicode" exports, PowerShell's `>`), with or without a byte-order mark, and 8-bit encodings such as Windows-1252.
The file is read as bytes and each line decoded on its own, so the line named is exact however large the file.
"""

from __future__ import annotations

import codecs
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import FactoryError

# UTF-32 first: its little-endian mark starts with UTF-16's
BOMS = [
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
]


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Each line of a UTF-8 file (line ending kept) with its number, from 1."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                raw = _first(raw, path)
            yield lineno, decode(raw, path, lineno)


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSONL file, parsed, with its number."""
    for lineno, line in lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise FactoryError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None


def decode(raw: bytes, path: Path, lineno: int) -> str:
    if b"\x00" in raw:  # never in UTF-8 text (JSON and YAML refuse it); every other byte of ASCII in UTF-16
        raise FactoryError(
            f"{path}:{lineno}: holds NUL bytes, so the file looks like UTF-16 without a byte-order mark;"
            f" it must be UTF-8: {fix(path, 'UTF-16LE')}"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        column = len(raw[: e.start].decode("utf-8")) + 1
        raise FactoryError(
            f"{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {column}); the file must be UTF-8."
            f" If it is a Windows-1252 (Latin-1) export, {fix(path, 'CP1252')}"
        ) from None


def fix(path: Path, encoding: str) -> str:
    """How to re-save a file as UTF-8, as a command to copy."""
    out = path.with_name(f"{path.stem}.utf8{path.suffix}")
    return f"re-save it as UTF-8, e.g. iconv -f {encoding} -t UTF-8 {shlex.quote(str(path))} > {shlex.quote(str(out))}"


def _first(raw: bytes, path: Path) -> bytes:
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :]
    for bom, name in BOMS:
        if raw.startswith(bom):
            raise FactoryError(
                f"{path}:1: the file is {name} (it starts with a {name} byte-order mark); it must be UTF-8:"
                f" {fix(path, name)}"
            )
    return raw
