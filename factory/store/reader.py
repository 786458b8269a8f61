"""Every query over the store: progress and lineage for a run, stats and facts for reports, export reads, the
trainers' reads, and a user's own SQL. A `StoreReader` opens the file read-only (see `handoff` for how it shares the
file with a running writer); a `StoreWriter` offers the same queries over its own connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from factory import costs
from factory.errors import FactoryError
from factory.store import handoff, schema
from factory.store.handoff import DEFAULT_DB, READ_WAIT
from factory.store.schema import PASS_RATES, VIEWS


class StoreReader:
    """The store at `path`, read-only. It asks a running writer to let go of the file, and waits up to `wait` seconds
    for it to."""

    def __init__(self, path: str | Path = DEFAULT_DB, wait: float = READ_WAIT):
        self.path = Path(path)
        self._file = self._open(wait)

    def _open(self, wait: float) -> handoff.ReaderFile:
        """The file opened read-only, an older store read as the current schema (the file left as it is)."""
        if not self.path.exists():
            raise FactoryError(f"no store at {self.path}; run `factory generate RECIPE --db {self.path}` first")
        f = handoff.ReaderFile(self.path, wait)
        with f.use() as con:
            if not schema.has(con, "runs"):
                f.close()
                raise FactoryError(f"{self.path} is a DuckDB file but not a factory store (it has no `runs` table)")
            schema.read_as_current(con)
        return f

    def _use(self):
        """The connection for one query, and the only way to it: a writer's waits for the file and keeps its other
        threads off the connection meanwhile."""
        return self._file.use()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # a user's own SQL
    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self._use() as con:
            try:
                cur = con.execute(sql)
            except duckdb.Error as e:
                raise FactoryError(f"query failed: {e}") from None
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()

    def query_args(self, sql: str, args: list) -> list[tuple]:
        """The project's own parameterized SQL (never a user's), its rows."""
        with self._use() as con:
            return con.execute(sql, args).fetchall()

    # audits (factory/audit.py)
    def labels(self) -> dict[str, bool]:
        """A person's verdicts: candidate id -> the answer is right."""
        return dict(self.query_args("SELECT candidate_id, right_answer FROM audit_labels", []))

    _LATEST_AUDIT = """SELECT audit_id, run_id, size, seed, population FROM audits
                       WHERE ? IS NULL OR run_id IS NOT DISTINCT FROM ? ORDER BY created_at DESC LIMIT 1"""

    def latest_audit(self, run_id: str | None = None):
        """The latest audit (of `run_id`, when given) with the labels recorded since, or None."""
        from factory.audit import Audit, Item

        found = self.query_args(self._LATEST_AUDIT, [run_id, run_id])
        if not found:
            return None
        audit_id, run, size, seed, population = found[0]
        audit = Audit(audit_id, run, size, seed, {tuple(p[:3]): p[3] for p in json.loads(population)})
        labels = self.labels()
        sql = """SELECT candidate_id, task, source, verdict, second, detail FROM audit_items
                 WHERE audit_id = ? ORDER BY task, source, verdict, candidate_id"""
        audit.items = [Item(*row, labels.get(row[0])) for row in self.query_args(sql, [audit_id])]
        return audit

    # runs
    _LATEST_RUN = """SELECT run_id FROM runs WHERE recipe_hash = ? AND retry_of IS NOT DISTINCT FROM ?
                     ORDER BY started_at DESC LIMIT 1"""

    def find_run(self, recipe_hash: str, retry_of: str | None = None) -> str | None:
        """The latest run of this recipe, or of this recipe retrying run `retry_of`: the one a rerun resumes."""
        with self._use() as con:
            row = con.execute(self._LATEST_RUN, [recipe_hash, retry_of]).fetchone()
            return row[0] if row else None

    def lineage(self, run_id: str) -> list[str]:
        """The run, the run it retried, that one's, and so on: [] when there is no such run."""
        out: list[str] = []
        with self._use() as con:
            while run_id is not None and run_id not in out:
                row = con.execute("SELECT retry_of FROM runs WHERE run_id = ?", [run_id]).fetchone()
                if row is None:
                    break
                out.append(run_id)
                run_id = row[0]
        return out

    _PROGRESS = """SELECT c.prompt_id, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id),
                          coalesce(sum(c.n_tokens), 0)
                   FROM candidate_rows c LEFT JOIN examples e USING (candidate_id)
                   WHERE c.run_id = ? GROUP BY c.prompt_id"""

    def progress(self, run_id: str) -> dict[str, tuple[int, int, int, int]]:
        """prompt_id -> (samples drawn, candidates passed, examples kept, tokens) for the run."""
        with self._use() as con:
            return {r[0]: tuple(r[1:]) for r in con.execute(self._PROGRESS, [run_id]).fetchall()}

    _SPENT_BY_RUN = """SELECT coalesce(sum(n_prompt_tokens), 0), coalesce(sum(engine_seconds), 0),
                              count(*) FILTER (WHERE finish_reason = 'length')
                       FROM candidate_rows WHERE run_id = ?"""

    def spent(self, run_id: str) -> tuple[int, float, int]:
        """The run's prompt tokens, engine seconds and candidates cut at max_tokens, as committed."""
        with self._use() as con:
            p, s, cut = con.execute(self._SPENT_BY_RUN, [run_id]).fetchone()
            return int(p), float(s), int(cut)

    _PROMPT_COSTS = """SELECT c.prompt_id, any_value(p.source), any_value(p.task), count(*),
                              count(*) FILTER (WHERE c.accepted), count(e.example_id), coalesce(sum(c.n_tokens), 0),
                              coalesce(sum(c.n_prompt_tokens), 0), count(*) FILTER (WHERE c.finish_reason = 'length'),
                              coalesce(sum(c.engine_seconds), 0)
                       FROM candidate_rows c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
                       WHERE c.run_id = ? AND c.prompt_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY c.prompt_id"""

    def prompt_costs(self, run_id: str, prompt_ids: list[str]) -> dict[str, tuple]:
        """prompt_id -> (source, task, samples, passed, examples, tokens, prompt tokens, cut, engine seconds) of
        these prompts in the run (those it sampled)."""
        with self._use() as con:
            return {r[0]: r[1:] for r in con.execute(self._PROMPT_COSTS, [run_id, prompt_ids]).fetchall()}

    def notices(self, run_id: str) -> dict:
        """What the run noticed (`runs.notices`), by key."""
        with self._use() as con:
            row = con.execute("SELECT notices FROM runs WHERE run_id = ?", [run_id]).fetchone()
            return json.loads(row[0]) if row and row[0] else {}

    def runs(self) -> list[dict]:
        with self._use() as con:
            return _dicts(con.execute("SELECT * FROM runs ORDER BY started_at"))

    # what the gates kept before
    _CHECKS_OF = "SELECT * FROM prompt_checks WHERE battery = ? AND prompt_id IN (SELECT unnest(?::VARCHAR[]))"

    def checks(self, prompt_ids: list[str], battery: str) -> dict[str, dict]:
        """The stored `prompt_checks` rows of these prompts under this battery, by prompt_id."""
        with self._use() as con:
            return {r["prompt_id"]: r for r in _dicts(con.execute(self._CHECKS_OF, [battery, prompt_ids]))}

    def dedup_rows(self, scope: str, chunk: int = 1 << 16) -> Iterator[tuple[str, bytes]]:
        """(key, signature) of every text kept under this dedup scope, by any run, fetched `chunk` at a time (a
        store's signatures are half a KB each: not all of them in memory at once)."""
        with self._use() as con:
            result = con.execute("SELECT key, signature FROM dedup WHERE scope = ?", [scope])
            while rows := result.fetchmany(chunk):
                yield from rows

    # what `factory stats`, a report and a dataset card show
    _RUNS = """SELECT r.run_id, r.name, r.model, r.status, r.started_at, r.ended_at,
                      count(DISTINCT c.prompt_id) AS prompts, count(c.candidate_id) AS candidates,
                      count(*) FILTER (WHERE c.accepted) AS passed, coalesce(sum(c.n_tokens), 0) AS tokens,
                      coalesce(sum(c.n_prompt_tokens), 0) AS prompt_tokens, sum(c.engine_seconds) AS engine_seconds,
                      count(*) FILTER (WHERE c.finish_reason = 'length') AS truncated,
                      count(*) FILTER (WHERE c.finish_reason = 'length') / nullif(count(c.candidate_id), 0)
                        AS truncated_share,
                      count(e.example_id) AS examples, any_value(r.budget) AS budget, any_value(r.notices) AS notices
               FROM runs r LEFT JOIN candidate_rows c USING (run_id) LEFT JOIN examples e USING (candidate_id)
               GROUP BY r.run_id, r.name, r.model, r.status, r.started_at, r.ended_at ORDER BY r.started_at"""
    # the cost ledger per prompt class: source, task and difficulty (factory/costs.py, by the prompt's pass rate)
    _LEDGER = f"""SELECT p.source, p.task, {costs.difficulty_sql("r.pass_rate")} AS difficulty,
                         count(DISTINCT c.prompt_id) AS prompts, count(*) AS candidates,
                         coalesce(sum(c.n_prompt_tokens), 0) AS prompt_tokens, coalesce(sum(c.n_tokens), 0) AS tokens,
                         sum(c.engine_seconds) AS engine_seconds, count(e.example_id) AS examples,
                         count(*) FILTER (WHERE c.finish_reason = 'length') AS truncated
                  FROM candidate_rows c JOIN prompts p USING (prompt_id) JOIN ({PASS_RATES}) r USING (prompt_id)
                  LEFT JOIN examples e USING (candidate_id)
                  WHERE ? IS NULL OR c.run_id = ?
                  GROUP BY ALL"""

    def ledger(self, run_id: str | None = None) -> list[dict]:
        """What each prompt class cost (of one run, or of every run), with its cost per kept example."""
        with self._use() as con:
            out = _dicts(con.execute(self._LEDGER, [run_id, run_id]))
        return sorted((r | costs.per_example(r) for r in out), key=costs.sort_key)

    _REASONS = """SELECT reason, count(*) FROM (SELECT reason FROM candidate_rows WHERE NOT accepted
                                                UNION ALL SELECT 'prompt_' || reason FROM prompt_drops)
                  GROUP BY reason ORDER BY 2 DESC, 1"""
    _BY_SOURCE = """SELECT p.source, p.task, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id)
                    FROM candidate_rows c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
                    GROUP BY ALL ORDER BY 1, 2"""
    # each code prompt's latest check: (first trivial program the tests accepted, whether the reference failed them)
    _LATEST_CHECKS = """SELECT weak_tests, bad_reference FROM prompt_checks
                        QUALIFY row_number() OVER (PARTITION BY prompt_id ORDER BY checked_at DESC) = 1"""

    # the judge cascade's work (filters/cascade.py): verdicts it sent to the judge, and what the judge made of them
    _CASCADE = """SELECT count(*), count(*) FILTER (WHERE reason = 'rescued_by_judge'),
                         count(*) FILTER (WHERE reason = 'overruled_by_judge')
                  FROM candidate_rows WHERE contains(scores::VARCHAR, '"cascade": "asked"')"""

    def stats(self) -> dict:
        """What `factory stats` shows: counts, each run's, the reasons for rejects, by source, checks and leaks."""
        with self._use() as con:
            one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
            runs, reasons = _dicts(con.execute(self._RUNS)), con.execute(self._REASONS).fetchall()
            by_source, checks = con.execute(self._BY_SOURCE).fetchall(), con.execute(self._LATEST_CHECKS).fetchall()
            cascade = con.execute(self._CASCADE).fetchone()
            return {
                "store": str(self.path),
                "prompts": one("SELECT count(*) FROM prompts"),
                "candidates": one("SELECT count(*) FROM candidate_rows"),
                "passed": one("SELECT count(*) FROM candidate_rows WHERE accepted"),
                "examples": one("SELECT count(*) FROM examples"),
                "runs": runs,
                "reasons": dict(reasons),
                "by_source": [
                    {"source": s, "task": t, "candidates": n, "passed": p, "examples": e} for s, t, n, p, e in by_source
                ],
                "test_checks": _test_checks(checks),
                "cascade": dict(zip(("asked", "rescued", "overruled"), cascade, strict=True)),
                "contaminated": self.leaks(),
                "ledger": self.ledger(),
            }

    _LEAKS = """SELECT scores->>'benchmark', coalesce(scores->>'method', 'problem'), coalesce(scores->>'field', kind),
                       count(*)
                FROM (SELECT scores, 'prompt' AS kind FROM prompt_drops WHERE reason = 'contaminated'
                      UNION ALL SELECT scores, 'response' FROM candidate_rows WHERE reason = 'contaminated')
                GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3"""

    def leaks(self) -> list[dict]:
        """Decontamination's hits: per benchmark, method (problem or solution n-grams) and field (prompt, response)."""
        keys = ("benchmark", "method", "field", "count")
        with self._use() as con:
            return [dict(zip(keys, r, strict=True)) for r in con.execute(self._LEAKS).fetchall()]

    _SPENT = """SELECT p.source, p.task, coalesce(sum(c.n_tokens), 0), count(e.example_id)
                FROM candidate_rows c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
                GROUP BY ALL ORDER BY 1, 2"""
    # texts per near-duplicate cluster: the kept one and those dropped for it
    _CLUSTERS = """SELECT count(*) + 1 FROM (
                     SELECT coalesce(scores->>'response_duplicate_of', scores->>'prompt_duplicate_of') AS of
                     FROM candidate_rows WHERE reason = 'near_duplicate'
                     UNION ALL SELECT scores->>'prompt_duplicate_of' FROM prompt_drops WHERE reason = 'near_duplicate')
                   GROUP BY of ORDER BY 1"""
    _LENGTHS = "SELECT n_tokens FROM candidate_rows WHERE accepted = {} ORDER BY 1"

    def facts(self) -> dict:
        """What a dataset card and a report show beyond `stats`: pass rates, lengths, tokens spent, dedup, leaks."""
        with self._use() as con:
            col = lambda sql: [r[0] for r in con.execute(sql).fetchall()]  # noqa: E731
            spent = con.execute(self._SPENT).fetchall()
            return {
                "pass_rates": col(f"SELECT pass_rate FROM ({PASS_RATES}) ORDER BY 1"),
                "lengths": {a: col(self._LENGTHS.format(a)) for a in ("true", "false")},
                "tokens_per_example": [
                    dict(zip(("source", "task", "tokens", "examples"), r, strict=True)) for r in spent
                ],
                "clusters": col(self._CLUSTERS),
                "contaminated": self.leaks(),
            }

    # reads for export and publish: the views (`schema.VIEWS`), streamed
    def columns(self, what: str) -> list[str]:
        with self._use() as con:
            return [d[0] for d in con.execute(f"SELECT * FROM ({VIEWS[what]}) v LIMIT 0").description]

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
            cond.append(f"prompt_id IN (SELECT prompt_id FROM ({PASS_RATES}) WHERE pass_rate BETWEEN {lo} AND {hi})")
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return f"SELECT {cols} FROM ({VIEWS[what]}) v" + (" WHERE " + " AND ".join(cond) if cond else "")

    # examples stream in the order they were committed (no sort: memory stays flat however big the store); the
    # others are joins or groups, whose order DuckDB does not keep, so they are sorted (spilling to disk when large)
    _ORDER = {"examples": "", "prompts": " ORDER BY prompt_id"}
    _ORDER["candidates"] = _ORDER["rejected"] = " ORDER BY run_id, prompt_id, sample_index"

    def rows(
        self,
        what: str,
        columns: list[str] | None = None,
        where: str | None = None,
        pass_rate=None,
        batch_rows: int = 1024,
    ) -> pa.RecordBatchReader:
        """Stream an export view (`VIEWS`) as Arrow batches: the rows `where` picks, in a stable order."""
        sql = self._select(what, columns, where, pass_rate)
        with self._use() as con:
            try:
                return con.sql(sql + self._ORDER[what]).to_arrow_reader(batch_rows)
            except duckdb.Error as e:
                raise FactoryError(f"export failed: {e}") from None

    def count(self, what: str, where: str | None = None, pass_rate=None) -> int:
        sql = f"SELECT count(*) FROM ({self._select(what, None, where, pass_rate)})"
        with self._use() as con:
            try:
                return con.execute(sql).fetchone()[0]
            except duckdb.Error as e:
                raise FactoryError(f"export failed: {e}") from None

    def task_rows(self, task: str, columns: list[str], where: str | None = None) -> pa.RecordBatchReader:
        """The examples of one task that `where` picks, streamed like `rows`."""
        quoted = task.replace("'", "''")
        return self.rows("examples", columns, (f"({where}) AND " if where else "") + f"task = '{quoted}'")

    # reads for the trainers and `factory eval`; `where` is a SQL condition on the examples (or prompts) table, as a
    # recipe writes it
    _MESSAGE_ORDER = {"committed": "created_at, example_id", "id": "example_id"}

    def messages(self, where: str | None = None, limit: int = 0, order: str = "committed") -> list[list[dict]]:
        """The `messages` of the examples `where` picks, in commit order ("committed") or by example_id ("id")."""
        sql = "SELECT messages FROM examples" + (f" WHERE {where}" if where else "")
        sql += f" ORDER BY {self._MESSAGE_ORDER[order]}" + (f" LIMIT {int(limit)}" if limit else "")
        return [m for (m,) in self.query(sql)[1]]

    # the pool a keep-policy picks from (factory/policies.py): every candidate with its prompt's columns, its pass
    # rate, its example's (NULL when it is none) and the ranks the named policies use. A recipe's `where` narrows the
    # pool before the ranks are taken; the policy's condition then picks, in commit order or a seeded shuffle
    _POOL = f"""SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index, p.source, p.task, p.prompt,
                       c.text AS completion, c.n_tokens, c.finish_reason, c.accepted, c.reason, c.scores,
                       e.example_id, e.messages, coalesce(e.created_at, c.created_at) AS created_at, r.pass_rate
                FROM candidates c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
                LEFT JOIN ({PASS_RATES}) r USING (prompt_id)"""
    _RANKS = """SELECT *, row_number() OVER (PARTITION BY reason ORDER BY nth_of_reason, md5(candidate_id)) AS spread
                FROM (SELECT *, count(example_id) OVER () AS n_examples,
                         row_number() OVER (PARTITION BY prompt_id ORDER BY created_at, run_id, sample_index)
                           AS nth_sample,
                         row_number() OVER (PARTITION BY prompt_id, accepted ORDER BY created_at, run_id, sample_index)
                           AS nth_accepted,
                         row_number() OVER (PARTITION BY prompt_id, accepted ORDER BY n_tokens, created_at, run_id,
                                            sample_index) AS nth_shortest,
                         row_number() OVER (PARTITION BY prompt_id, reason ORDER BY created_at, run_id, sample_index)
                           AS nth_of_reason
                      FROM ({pool}) pool WHERE {where})"""
    _PICKED = """SELECT candidate_id, run_id, prompt_id, task, source, prompt, completion, n_tokens, accepted,
                        reason, example_id, messages
                 FROM ({ranks}) WHERE {policy} ORDER BY {order}"""
    _POOL_ORDER = "created_at, example_id, candidate_id"

    def picked(self, policy: str, where: str | None = None, shuffle: int | None = None) -> list[dict]:
        """The candidates a keep-policy's condition picks from the pool that `where` leaves: in commit order, or in
        an order shuffled by `shuffle` (a seed: the same seed, the same order)."""
        order = self._POOL_ORDER if shuffle is None else f"md5(candidate_id || ':{int(shuffle)}')"
        ranks = self._RANKS.format(pool=self._POOL, where=f"({where})" if where else "true")
        with self._use() as con:
            try:
                return _dicts(con.execute(self._PICKED.format(ranks=ranks, policy=policy, order=order)))
            except duckdb.Error as e:
                raise FactoryError(f"picking candidates where {where!r}, by the condition {policy!r}: {e}") from None

    def run_prompts(self) -> dict[str, str]:
        """Each run's recipe (YAML as resolved), by run_id: how its prompts were put to the model."""
        return dict(self.query_args("SELECT run_id, recipe FROM runs", []))

    # `where` names the prompts' columns as an SFT recipe names the examples' (task = 'math'); `p.task`, the old
    # spelling, still works
    _BY_PASS_RATE = (
        "SELECT source, task, prompt, reference, metadata, pass_rate FROM (SELECT p.*, r.pass_rate"
        f" FROM prompts p LEFT JOIN ({PASS_RATES}) r USING (prompt_id)) p"
    )

    def prompts_by_pass_rate(
        self, where: str | None = None, pass_rate: tuple | None = None, limit: int = 0
    ) -> list[tuple]:
        """(source, task, prompt, reference, metadata, pass rate or None when never sampled) of the prompts `where`
        and the pass-rate window pick, by prompt_id."""
        cond = [f"({where})"] if where else []
        if pass_rate is not None:
            cond.append(f"pass_rate BETWEEN {float(pass_rate[0])} AND {float(pass_rate[1])}")
        sql = self._BY_PASS_RATE + (" WHERE " + " AND ".join(cond) if cond else "") + " ORDER BY prompt_id"
        return self.query(sql + (f" LIMIT {int(limit)}" if limit else ""))[1]

    def prompt_texts(self) -> list[str]:
        """Every prompt's text (what `factory eval --training` counts as seen)."""
        return [t for (t,) in self.query("SELECT prompt FROM prompts")[1]]


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    """The rows of a query's result as dicts, by column name."""
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _test_checks(rows: list[tuple]) -> dict:
    """What the weak-test gate found (filters/weak_tests.py): prompts checked, weak (by the class of the first
    trivial program their tests accepted), and with a reference solution that fails their tests."""
    weak = [w.split("(", 1)[0] for w, _ in rows if w]
    by = {k: weak.count(k) for k in sorted(set(weak), key=lambda k: (-weak.count(k), k))}
    bad = sum(bool(b) for _, b in rows)
    return {"checked": len(rows), "weak_tests": len(weak), "bad_reference": bad, "by_program": by}
