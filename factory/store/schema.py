"""The store's schema: its tables, the Arrow schemas a batch is written with, the views users read, and how an older
store is read as it is or migrated.

Schema 2: no index on the growing tables (DuckDB keeps an index whole in memory and rewrites it at every checkpoint);
the writer keeps keys unique itself. An accepted text is stored once, in `examples.messages`; the `candidates` view
gives every candidate its text back. Schema 3: `runs.retry_of`, which the next writer of an older store adds.
Schema 4: `prompt_checks`, made by the next writer of an older store (a reader of one sees it empty). Schema 5: the
audit's tables (`audits`, `audit_items`, `audit_labels`) and `runs.canaries`, likewise. Schema 6: the cost ledger
(`candidate_rows.engine_seconds`), `runs.budget` and `runs.notices`, added by the next writer of an older store (a
reader of one sees them NULL).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

ROW_GROUP = 2048  # rows per row group: DuckDB's 122,880 would put 1.5 GB of traces in each

# the one place tables are defined; column names are a contract: users and tools query them
DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key           VARCHAR PRIMARY KEY,
    value         VARCHAR
);

CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    name          VARCHAR,
    recipe_hash   VARCHAR NOT NULL,   -- a rerun of the same recipe on the same store resumes this run
    recipe        VARCHAR NOT NULL,   -- the recipe's YAML, overrides applied
    model         VARCHAR,
    engine        VARCHAR,
    sampling      JSON,
    versions      JSON,               -- factory, engine library, torch, python
    started_at    TIMESTAMP,
    ended_at      TIMESTAMP,
    status        VARCHAR,            -- running | complete | interrupted | judge_refused | budget | pilot
    retry_of      VARCHAR             -- the run whose unfinished prompts this one samples again (`--retry`), or NULL
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS retry_of VARCHAR;  -- a store made before schema 3
ALTER TABLE runs ADD COLUMN IF NOT EXISTS canaries JSON;  -- the judge's grades of answers that say nothing (schema 5)
-- schema 6: the budget the run last ran under ({"tokens": .., "hours": ..}, factory/budget.py), and what it noticed
-- on the way ({"truncation": {...}}: too many candidates cut at max_tokens, factory/truncation.py)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS budget JSON;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS notices JSON;

CREATE TABLE IF NOT EXISTS prompts (
    prompt_id     VARCHAR NOT NULL,    -- hash of source and text; unique
    source        VARCHAR NOT NULL,
    task          VARCHAR NOT NULL,    -- math | code | general
    prompt        VARCHAR NOT NULL,
    reference     JSON,                -- the answer, or the tests
    metadata      JSON
);

CREATE TABLE IF NOT EXISTS candidate_rows (  -- read it as the `candidates` view
    candidate_id  VARCHAR NOT NULL,    -- unique; a hash of run, prompt and sample index
    run_id        VARCHAR NOT NULL,
    prompt_id     VARCHAR NOT NULL,
    sample_index  INTEGER NOT NULL,    -- 0.. per (run, prompt); samples drawn count toward max_samples
    text          VARCHAR,             -- NULL when an example holds it: see text_edit
    n_tokens      INTEGER,
    n_prompt_tokens INTEGER,
    finish_reason VARCHAR,
    accepted      BOOLEAN NOT NULL,    -- passed every filter
    reason        VARCHAR,             -- the first filter's reject code; NULL when accepted, or rescued_by_judge
    scores        JSON,
    created_at    TIMESTAMP,
    text_edit     STRUCT(head VARCHAR, cut INTEGER, tail VARCHAR), -- text = head || reply[cut + 1:] || tail
    -- the engine's wall time spent on this sample (schema 6; NULL before): each engine step's (or batch call's) time
    -- shared among the samples in it, by their tokens in that step; so a run's sum is the engine's busy time
    engine_seconds DOUBLE
);
ALTER TABLE candidate_rows ADD COLUMN IF NOT EXISTS engine_seconds DOUBLE;  -- a store made before schema 6

CREATE TABLE IF NOT EXISTS examples (
    example_id    VARCHAR NOT NULL,    -- unique
    candidate_id  VARCHAR NOT NULL,    -- unique: one example per candidate
    prompt_id     VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    messages      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL, -- chat format, as TRL's SFTTrainer reads it
    task          VARCHAR,
    source        VARCHAR,
    n_tokens      INTEGER,
    created_at    TIMESTAMP
);

CREATE TABLE IF NOT EXISTS prompt_drops (     -- prompts a run did not sample: a benchmark leak, a near-duplicate
    run_id        VARCHAR NOT NULL,            -- (run_id, prompt_id) unique
    prompt_id     VARCHAR NOT NULL,
    reason        VARCHAR NOT NULL,            -- contaminated | near_duplicate | weak_tests | bad_reference
    scores        JSON                         -- which benchmark item and n-gram matched; which prompt it repeats
);

CREATE TABLE IF NOT EXISTS prompt_checks (   -- a code prompt's tests run once against trivial programs, by any run
    prompt_id     VARCHAR NOT NULL,           -- (prompt_id, battery) unique
    battery       VARCHAR NOT NULL,           -- filters.weak_tests.BATTERY: a new battery checks every prompt again
    weak_tests    VARCHAR,                    -- the first trivial program the tests accepted, NULL when none did
    passed        JSON,                       -- every trivial program they accepted
    bad_reference BOOLEAN,                    -- the source's reference solution fails them; NULL: it has none
    detail        VARCHAR,                    -- why the tests do not run, where they do not
    checked_at    TIMESTAMP
);

CREATE TABLE IF NOT EXISTS dedup (            -- MinHash signatures of every kept text: dedup holds across runs
    scope         VARCHAR NOT NULL,            -- which text and settings, e.g. 'prompt/minhash-v1/w3-p128-s1-num'
    key           VARCHAR NOT NULL,            -- prompt_id or candidate_id of the kept text; (scope, key) unique
    signature     BLOB NOT NULL                -- num_perm little-endian uint32 MinHash values
);

CREATE TABLE IF NOT EXISTS audits (          -- `factory audit`: a sample of verdicts given a second opinion
    audit_id      VARCHAR NOT NULL,
    run_id        VARCHAR,                    -- NULL: every run of the store
    created_at    TIMESTAMP,
    size          INTEGER,                    -- candidates drawn per stratum at most
    seed          INTEGER,
    population    JSON                        -- [[task, source, verdict, candidates], ...]: what the sample stands for
);

CREATE TABLE IF NOT EXISTS audit_items (
    audit_id      VARCHAR NOT NULL,
    candidate_id  VARCHAR NOT NULL,
    task          VARCHAR,
    source        VARCHAR,
    verdict       VARCHAR,                    -- accepted | wrong_answer: what the verify stage said
    second        BOOLEAN,                    -- the second opinion: right, wrong, NULL when it cannot tell
    detail        VARCHAR                     -- what it read
);

CREATE TABLE IF NOT EXISTS audit_labels (     -- a person's verdicts (`factory audit --label`): they override
    candidate_id  VARCHAR PRIMARY KEY,
    right_answer  BOOLEAN NOT NULL,
    note          VARCHAR,
    labelled_at   TIMESTAMP
);

CREATE OR REPLACE VIEW candidates AS
SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index,
       coalesce(c.text, c.text_edit.head || substr(e.messages[len(e.messages)].content, c.text_edit.cut + 1)
                        || c.text_edit.tail) AS text,
       c.n_tokens, c.n_prompt_tokens, c.finish_reason, c.accepted, c.reason, c.scores, c.created_at,
       c.engine_seconds
FROM candidate_rows c LEFT JOIN examples e ON e.candidate_id = c.candidate_id;

INSERT INTO meta VALUES ('schema', '6') ON CONFLICT DO UPDATE SET value = excluded.value;
"""

# the tables a batch writes, as Arrow: the columns of DDL's tables, in their order
CANDIDATE = pa.schema(
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
EDIT = pa.struct([("head", pa.string()), ("cut", pa.int32()), ("tail", pa.string())])
# a candidate as stored: see `held_by_example`
ROW = CANDIDATE.append(pa.field("text_edit", EDIT)).append(pa.field("engine_seconds", pa.float64()))
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EXAMPLE = pa.schema(
    [
        ("example_id", pa.string()),
        ("candidate_id", pa.string()),
        ("prompt_id", pa.string()),
        ("run_id", pa.string()),
        ("messages", MESSAGES),
        ("task", pa.string()),
        ("source", pa.string()),
        ("n_tokens", pa.int32()),
        ("created_at", pa.timestamp("us")),
    ]
)
DEDUP = pa.schema([("scope", pa.string()), ("key", pa.string()), ("signature", pa.binary())])
DROP = pa.schema([(n, pa.string()) for n in ("run_id", "prompt_id", "reason", "scores")])
CHECK = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("battery", pa.string()),
        ("weak_tests", pa.string()),
        ("passed", pa.string()),
        ("bad_reference", pa.bool_()),
        ("detail", pa.string()),
        ("checked_at", pa.timestamp("us")),
    ]
)
PROMPT = pa.schema([(n, pa.string()) for n in ("prompt_id", "source", "task", "prompt", "reference", "metadata")])
# each table's unique keys, kept by the writer: DuckDB's own indexes cost memory and time that grow with the store
KEYS = {
    "prompts": ["prompt_id"],
    "candidate_rows": ["candidate_id", "run_id, prompt_id, sample_index"],
    "examples": ["example_id", "candidate_id"],
    "dedup": ["scope, key"],
    "prompt_drops": ["run_id, prompt_id"],
    "prompt_checks": ["prompt_id, battery"],
}


# an accepted text stored once
def held_by_example(text: str, reply: str) -> dict | None:
    """How `text` is rebuilt from an example's reply (`chat.assistant_text`: stripped, maybe `<think>` put back
    in front), or None when it cannot be and the candidate keeps its own copy."""
    core = text.strip()
    cut = len(reply) - len(core)
    if cut < 0 or reply[cut:] != core:
        return None
    head = text[: len(text) - len(text.lstrip())]
    tail = text[len(text.rstrip()) :] if core else ""  # all whitespace: the head holds it all
    return {"head": head, "cut": cut, "tail": tail} if head + reply[cut:] + tail == text else None


def held(candidates: list[dict], examples: list[dict]) -> list[dict]:
    """Candidate rows as stored: the text of one an example holds is left out, with how to rebuild it."""
    replies = {e["candidate_id"]: e["messages"][-1]["content"] for e in examples}
    out = []
    for c in candidates:
        edit = held_by_example(c["text"], replies[c["candidate_id"]]) if c["candidate_id"] in replies else None
        out.append(c | {"text": None, "text_edit": edit} if edit else c | {"text_edit": None})
    return out


# the views `factory export` writes, each a query whose columns `--columns` and `--where` name
PASS_RATES = "SELECT prompt_id, avg(accepted::INT) AS pass_rate FROM candidate_rows GROUP BY prompt_id"
_CANDIDATES = """SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index, p.source, p.task, p.prompt,
                        p.reference, c.text AS completion, c.n_tokens, c.finish_reason, c.accepted, c.reason, c.scores
                 FROM {t} c JOIN prompts p USING (prompt_id)"""
VIEWS = {
    # each example with its provenance (factory/provenance.py): what generated it, and whether a judge decided it
    "examples": """SELECT e.* EXCLUDE (created_at), r.model AS generator,
                          r.versions->'model'->>'sha256' AS model_sha256, r.engine,
                          r.versions->>'engine' AS engine_version, r.versions->'verifiers' AS verifiers,
                          c.scores->>'judge_score' IS NOT NULL AS judged, p.metadata->>'license' AS source_license
                   FROM examples e JOIN runs r USING (run_id) JOIN candidate_rows c USING (candidate_id)
                        JOIN prompts p ON p.prompt_id = e.prompt_id""",
    "candidates": _CANDIDATES.format(t="candidates"),
    "prompts": f"""SELECT p.prompt_id, p.source, p.task, p.prompt, p.reference, p.reference->>'answer' AS answer,
                          count(*) AS samples, count(*) FILTER (WHERE c.accepted) AS passed, any_value(r.pass_rate)
                          AS pass_rate
                   FROM prompts p JOIN candidate_rows c USING (prompt_id) JOIN ({PASS_RATES}) r USING (prompt_id)
                   GROUP BY ALL""",
    "rejected": _CANDIDATES.format(t="candidate_rows") + " WHERE NOT c.accepted",  # never an example's text
}


def has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the store in use has this table (or view)."""
    sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_catalog = current_database()"
    return bool(con.execute(sql, [table]).fetchall())


def sql_path(path: Path) -> str:
    """A path as the inside of a SQL string literal."""
    return str(path).replace("'", "''")


# older stores
_NO_CHECKS = """CREATE TEMP VIEW prompt_checks AS
                SELECT NULL::VARCHAR AS prompt_id, NULL::VARCHAR AS weak_tests, NULL::BOOLEAN AS bad_reference,
                       NULL::TIMESTAMP AS checked_at
                WHERE false"""


_NO_AUDITS = [
    "CREATE TEMP TABLE audits (audit_id VARCHAR, run_id VARCHAR, created_at TIMESTAMP, size INTEGER, seed INTEGER,"
    " population JSON)",
    "CREATE TEMP TABLE audit_items (audit_id VARCHAR, candidate_id VARCHAR, task VARCHAR, source VARCHAR,"
    " verdict VARCHAR, second BOOLEAN, detail VARCHAR)",
    "CREATE TEMP TABLE audit_labels (candidate_id VARCHAR, right_answer BOOLEAN, note VARCHAR, labelled_at TIMESTAMP)",
]


def read_as_current(con: duckdb.DuckDBPyConnection) -> None:
    """Let a reader read an older store as the current schema, through temporary views: the file is left as it is."""
    if not has(con, "candidate_rows"):  # a schema 1 store
        con.execute(
            "CREATE TEMP VIEW candidate_rows AS"
            " SELECT *, NULL AS text_edit, NULL::DOUBLE AS engine_seconds FROM candidates"
        )
    if not has(con, "prompt_checks"):  # before schema 4: no prompt checked
        con.execute(_NO_CHECKS)
    if not has(con, "audits"):  # before schema 5: never audited
        for sql in _NO_AUDITS:
            con.execute(sql)
    _cost_columns(con)


def _cost_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Before schema 6: no cost ledger, budget or notices; read as NULL through temporary views that shadow the
    tables (the file's own views, `candidates` among them, read them too)."""
    db = con.execute("SELECT current_database()").fetchone()[0]
    for table, cols in _COST_COLUMNS.items():
        have = {r[0] for r in con.execute(_COLUMNS, [table, db]).fetchall()}
        missing = [f"NULL::{t} AS {c}" for c, t in cols.items() if c not in have]
        if have and missing:
            con.execute(f'CREATE TEMP VIEW {table} AS SELECT *, {", ".join(missing)} FROM "{db}".main.{table}')


_COST_COLUMNS = {"candidate_rows": {"engine_seconds": "DOUBLE"}, "runs": {"budget": "JSON", "notices": "JSON"}}
_COLUMNS = """SELECT column_name FROM information_schema.columns
               WHERE table_name = ? AND table_catalog = ? AND table_schema = 'main'"""


def needs_migration(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store in use is of schema 1 (indexed tables, accepted texts twice), which a writer rewrites."""
    return has(con, "candidates") and not has(con, "candidate_rows")


_SLICE = 20_000  # schema 1 candidates migrated at a time: the rows pass through Python to find what examples hold
_OLD_CANDIDATES = """SELECT c.*, e.messages[len(e.messages)].content AS _reply
                     FROM store.candidates c LEFT JOIN store.examples e USING (candidate_id)
                     WHERE c.rowid >= ? AND c.rowid < ? ORDER BY c.rowid"""


def migrate(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """Write the schema 1 store attached as `store` as the current schema into a new file beside it, and return that
    file, for the caller to put in the store's place: a crash before then leaves the old store as it was, and the new
    file is compact."""
    fresh = path.with_name(path.name + ".migrating")
    for f in (fresh, fresh.with_name(fresh.name + ".wal")):
        f.unlink(missing_ok=True)  # a migration a crash cut short
    con.execute(f"ATTACH '{sql_path(fresh)}' AS fresh (ROW_GROUP_SIZE {ROW_GROUP})")
    con.execute("USE fresh")
    con.execute(DDL)
    for t in ("runs", "prompts", "examples", "prompt_drops", "dedup"):  # by name: schema 1 has no runs.retry_of
        con.execute(f"INSERT INTO fresh.{t} BY NAME SELECT * FROM store.{t}")
    [(n,)] = con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM store.candidates").fetchall()
    for lo in range(0, n, _SLICE):
        _migrate_candidates(con, lo, lo + _SLICE)
    con.execute("CHECKPOINT fresh")
    con.execute("USE store")
    con.execute("DETACH fresh")
    return fresh


def _migrate_candidates(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> None:
    """Copy the schema 1 candidates with rowid in [lo, hi), leaving out each text its example holds."""
    cur = con.execute(_OLD_CANDIDATES, [lo, hi])
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        reply = r.pop("_reply")
        r["text_edit"] = held_by_example(r["text"], reply) if reply is not None else None
        if r["text_edit"]:
            r["text"] = None
    con.register("_rows", pa.Table.from_pylist(rows, schema=ROW))
    con.execute("INSERT INTO fresh.candidate_rows SELECT * FROM _rows")
    con.unregister("_rows")
