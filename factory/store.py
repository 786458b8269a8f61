"""The DuckDB store: the only module that speaks SQL.

Every batch (new prompts, its candidates, its examples) is written through Arrow in one transaction, so a run
killed at any point leaves whole batches only, and the unique keys make a second write of the same sample fail
loudly instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from factory.errors import FactoryError

DEFAULT_DB = "data/factory.duckdb"

_CANDIDATE = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("run_id", pa.string()),
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("text", pa.string()),
        ("n_tokens", pa.int32()),
        ("n_prompt_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("accepted", pa.bool_()),
        ("reason", pa.string()),
        ("scores", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_EXAMPLE = pa.schema(
    [
        ("example_id", pa.string()),
        ("candidate_id", pa.string()),
        ("prompt_id", pa.string()),
        ("run_id", pa.string()),
        ("messages", _MESSAGES),
        ("task", pa.string()),
        ("source", pa.string()),
        ("n_tokens", pa.int32()),
        ("created_at", pa.timestamp("us")),
    ]
)
_DEDUP = pa.schema([("scope", pa.string()), ("key", pa.string()), ("signature", pa.binary())])
_DROP = pa.schema([(n, pa.string()) for n in ("run_id", "prompt_id", "reason", "scores")])
_PROMPT = pa.schema([(n, pa.string()) for n in ("prompt_id", "source", "task", "prompt", "reference", "metadata")])


def candidate_id(run_id: str, prompt_id: str, sample_index: int) -> str:
    return hashlib.sha256(f"{run_id}/{prompt_id}/{sample_index}".encode()).hexdigest()[:20]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Batch:
    """What one commit writes: rows as dicts keyed by column name."""

    prompts: list[dict]
    candidates: list[dict]
    examples: list[dict]
    dedup: list[dict] = field(default_factory=list)  # signatures of newly kept texts
    prompt_drops: list[dict] = field(default_factory=list)


class StoreBusy(FactoryError):
    """The store is open for writing in another process (DuckDB allows one writer and no reader beside it)."""


class Store:
    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise FactoryError(f"no store at {self.path}; run `factory generate RECIPE --db {self.path}` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise StoreBusy(
                    f"the store {self.path} is open for writing in another process (a running `factory generate`?)."
                    f" Wait for it to end, or read its progress in {self.snapshot_path}"
                ) from None
            raise FactoryError(f"cannot open the store {self.path}: {e}") from None
        except duckdb.Error as e:  # not a DuckDB file (DuckDB reads some other files as an in-memory database)
            raise FactoryError(f"cannot open the store {self.path}: not a DuckDB database ({e})") from None
        if not read_only:
            self.con.execute(resources.files("factory").joinpath("schema.sql").read_text())
        elif not self.con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'runs'").fetchall():
            self.con.close()
            raise FactoryError(f"{self.path} is a DuckDB file but not a factory store (it has no `runs` table)")

    @property
    def snapshot_path(self) -> Path:
        return self.snapshot_for(self.path)

    @staticmethod
    def snapshot_for(path: Path) -> Path:
        return path.with_name(path.name + ".progress.json")

    def close(self) -> None:
        self.con.close()

    # runs
    def find_run(self, recipe_hash: str) -> str | None:
        row = self.con.execute(
            "SELECT run_id FROM runs WHERE recipe_hash = ? ORDER BY started_at DESC LIMIT 1", [recipe_hash]
        ).fetchone()
        return row[0] if row else None

    def start_run(self, name: str, recipe_hash: str, recipe: str, model: str, engine: str, sampling: dict,
                  versions: dict) -> str:  # fmt: skip
        run_id = f"{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 'running')",
            [run_id, name, recipe_hash, recipe, model, engine, json.dumps(sampling), json.dumps(versions), now()],
        )
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        ended = now() if status != "running" else None
        self.con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", [status, ended, run_id])

    def progress(self, run_id: str) -> dict[str, tuple[int, int, int, int]]:
        """prompt_id -> (samples drawn, candidates passed, examples kept, tokens) for the run."""
        rows = self.con.execute(
            """SELECT c.prompt_id, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id),
                      coalesce(sum(c.n_tokens), 0)
               FROM candidates c LEFT JOIN examples e USING (candidate_id)
               WHERE c.run_id = ? GROUP BY c.prompt_id""",
            [run_id],
        ).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}

    # writes
    def commit(self, batch: Batch) -> None:
        """Write one batch in one transaction: all of it lands, or none of it."""
        tables = [
            ("prompts", _PROMPT, batch.prompts, "INSERT OR IGNORE INTO prompts SELECT * FROM {t}"),
            ("candidates", _CANDIDATE, batch.candidates, "INSERT INTO candidates SELECT * FROM {t}"),
            ("examples", _EXAMPLE, batch.examples, "INSERT INTO examples SELECT * FROM {t}"),
            ("dedup", _DEDUP, batch.dedup, "INSERT OR IGNORE INTO dedup SELECT * FROM {t}"),
            ("prompt_drops", _DROP, batch.prompt_drops, "INSERT OR IGNORE INTO prompt_drops SELECT * FROM {t}"),
        ]
        self.con.execute("BEGIN TRANSACTION")
        try:
            for name, schema, rows, sql in tables:
                if rows:
                    view = f"_batch_{name}"
                    self.con.register(view, pa.Table.from_pylist(rows, schema=schema))
                    self.con.execute(sql.format(t=view))
                    self.con.unregister(view)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def dedup_rows(self, scope: str) -> list[tuple[str, bytes]]:
        """(key, signature) of every text kept under this dedup scope, by any run."""
        return self.con.execute("SELECT key, signature FROM dedup WHERE scope = ?", [scope]).fetchall()

    def publish(self, snapshot: dict) -> None:
        """Progress for readers that cannot open the file while this process writes it."""
        tmp = self.snapshot_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, default=str))
        os.replace(tmp, self.snapshot_path)

    # reads
    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        try:
            cur = self.con.execute(sql)
        except duckdb.Error as e:
            raise FactoryError(f"query failed: {e}") from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def stats(self) -> dict:
        one = lambda sql: self.con.execute(sql).fetchone()  # noqa: E731
        runs = self.con.execute(
            """SELECT r.run_id, r.name, r.model, r.status, r.started_at, r.ended_at,
                      count(DISTINCT c.prompt_id), count(c.candidate_id), count(*) FILTER (WHERE c.accepted),
                      coalesce(sum(c.n_tokens), 0)
               FROM runs r LEFT JOIN candidates c USING (run_id)
               GROUP BY ALL ORDER BY r.started_at"""
        ).fetchall()
        keys = ("run_id", "name", "model", "status", "started_at", "ended_at", "prompts", "candidates", "passed",
                "tokens")  # fmt: skip
        reasons = self.con.execute(
            """SELECT reason, count(*) FROM (SELECT reason FROM candidates WHERE NOT accepted
                                            UNION ALL SELECT 'prompt_' || reason FROM prompt_drops)
               GROUP BY reason ORDER BY 2 DESC, 1"""
        ).fetchall()
        by_source = self.con.execute(
            """SELECT p.source, p.task, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id)
               FROM candidates c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
               GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
        return {
            "store": str(self.path),
            "prompts": one("SELECT count(*) FROM prompts")[0],
            "candidates": one("SELECT count(*) FROM candidates")[0],
            "passed": one("SELECT count(*) FROM candidates WHERE accepted")[0],
            "examples": one("SELECT count(*) FROM examples")[0],
            "runs": [dict(zip(keys, r, strict=True)) for r in runs],
            "reasons": dict(reasons),
            "by_source": [
                {"source": s, "task": t, "candidates": n, "passed": p, "examples": e} for s, t, n, p, e in by_source
            ],
        }

    # reads for export, publish and report
    def _select(self, what: str, columns: list[str] | None, where: str | None, pass_rate: tuple | None) -> str:
        if what not in VIEWS:
            raise FactoryError(f"--what {what!r}: choose one of {', '.join(VIEWS)}")
        have = self.columns(what)
        unknown = [c for c in columns or [] if c not in have]
        if unknown:
            raise FactoryError(f"--columns {','.join(unknown)}: not a column of {what}; choose from {', '.join(have)}")
        cond = [f"({where})"] if where else []
        if pass_rate is not None:
            lo, hi = (float(x) for x in pass_rate)
            cond.append(f"prompt_id IN (SELECT prompt_id FROM ({_PASS}) WHERE pass_rate BETWEEN {lo} AND {hi})")
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return f"SELECT {cols} FROM ({VIEWS[what]}) v" + (" WHERE " + " AND ".join(cond) if cond else "")

    def columns(self, what: str) -> list[str]:
        return [d[0] for d in self.con.execute(f"SELECT * FROM ({VIEWS[what]}) v LIMIT 0").description]

    def rows(self, what: str, columns: list[str] | None = None, where: str | None = None, pass_rate=None,
             batch_rows: int = 1024) -> pa.RecordBatchReader:  # fmt: skip
        """Stream an export view (`VIEWS`) as Arrow batches: the rows `where` picks, in a stable order."""
        sql = self._select(what, columns, where, pass_rate)
        try:
            return self.con.sql(f"{sql} ORDER BY {_ORDER[what]}").to_arrow_reader(batch_rows)
        except duckdb.Error as e:
            raise FactoryError(f"export failed: {e}") from None

    def count(self, what: str, where: str | None = None, pass_rate=None) -> int:
        sql = f"SELECT count(*) FROM ({self._select(what, None, where, pass_rate)})"
        try:
            return self.con.execute(sql).fetchone()[0]
        except duckdb.Error as e:
            raise FactoryError(f"export failed: {e}") from None

    def runs(self) -> list[dict]:
        cur = self.con.execute("SELECT * FROM runs ORDER BY started_at")
        return [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]

    def facts(self) -> dict:
        """What a dataset card and a report show beyond `stats`: pass rates, lengths, tokens spent, dedup, leaks."""
        col = lambda sql: [r[0] for r in self.con.execute(sql).fetchall()]  # noqa: E731
        spent = self.con.execute(_SPENT).fetchall()
        return {
            "pass_rates": col(f"SELECT pass_rate FROM ({_PASS}) ORDER BY 1"),
            "lengths": {
                a: col(f"SELECT n_tokens FROM candidates WHERE accepted = {a} ORDER BY 1") for a in ("true", "false")
            },
            "tokens_per_example": [dict(zip(("source", "task", "tokens", "examples"), r, strict=True)) for r in spent],
            "clusters": col(_CLUSTERS),  # texts per near-duplicate cluster: the kept one and those dropped for it
            "contaminated": self.con.execute(_LEAKS).fetchall(),  # (benchmark, count)
        }


_SPENT = """SELECT p.source, p.task, coalesce(sum(c.n_tokens), 0), count(e.example_id)
            FROM candidates c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
            GROUP BY ALL ORDER BY 1, 2"""
_CLUSTERS = """SELECT count(*) + 1 FROM (
                 SELECT coalesce(scores->>'response_duplicate_of', scores->>'prompt_duplicate_of') AS of
                 FROM candidates WHERE reason = 'near_duplicate'
                 UNION ALL SELECT scores->>'prompt_duplicate_of' FROM prompt_drops WHERE reason = 'near_duplicate')
               GROUP BY of ORDER BY 1"""
_LEAKS = """SELECT scores->>'benchmark', count(*) FROM (
              SELECT scores FROM prompt_drops WHERE reason = 'contaminated'
              UNION ALL SELECT scores FROM candidates WHERE reason = 'contaminated')
            GROUP BY 1 ORDER BY 2 DESC, 1"""
_PASS = "SELECT prompt_id, avg(accepted::INT) AS pass_rate FROM candidates GROUP BY prompt_id"
# what `factory export` can write; each a view whose columns `--columns` and `--where` name
VIEWS = {
    "examples": "SELECT * EXCLUDE (created_at) FROM examples",
    "candidates": """SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index, p.source, p.task, p.prompt,
                            p.reference, c.text AS completion, c.n_tokens, c.finish_reason, c.accepted, c.reason,
                            c.scores
                     FROM candidates c JOIN prompts p USING (prompt_id)""",
    "prompts": f"""SELECT p.prompt_id, p.source, p.task, p.prompt, p.reference, p.reference->>'answer' AS answer,
                          count(*) AS samples, count(*) FILTER (WHERE c.accepted) AS passed, any_value(r.pass_rate)
                          AS pass_rate
                   FROM prompts p JOIN candidates c USING (prompt_id) JOIN ({_PASS}) r USING (prompt_id)
                   GROUP BY ALL""",
}
VIEWS["rejected"] = f"SELECT * FROM ({VIEWS['candidates']}) WHERE NOT accepted"
_ORDER = {"examples": "run_id, prompt_id, candidate_id", "prompts": "prompt_id"}
_ORDER["candidates"] = _ORDER["rejected"] = "run_id, prompt_id, sample_index"
