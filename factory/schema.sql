-- The store's schema: the one place tables are defined. Column names are a contract: users and tools query them.
-- Schema 2: no index on the growing tables (DuckDB keeps an index whole in memory and rewrites it at every
-- checkpoint); the store module keeps keys unique itself. An accepted text is stored once, in `examples.messages`;
-- the `candidates` view gives every candidate its text back. Schema 3: `runs.retry_of`, which the next writer of an
-- older store adds. Schema 4: `prompt_checks`, made by the next writer of an older store (a reader of one sees it
-- empty).

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
    status        VARCHAR,            -- running | complete | interrupted
    retry_of      VARCHAR             -- the run whose unfinished prompts this one samples again (`--retry`), or NULL
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS retry_of VARCHAR;  -- a store made before schema 3

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
    reason        VARCHAR,             -- the first filter's reject code, NULL when accepted
    scores        JSON,
    created_at    TIMESTAMP,
    text_edit     STRUCT(head VARCHAR, cut INTEGER, tail VARCHAR)  -- text = head || reply[cut + 1:] || tail
);

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

CREATE OR REPLACE VIEW candidates AS
SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index,
       coalesce(c.text, c.text_edit.head || substr(e.messages[len(e.messages)].content, c.text_edit.cut + 1)
                        || c.text_edit.tail) AS text,
       c.n_tokens, c.n_prompt_tokens, c.finish_reason, c.accepted, c.reason, c.scores, c.created_at
FROM candidate_rows c LEFT JOIN examples e ON e.candidate_id = c.candidate_id;

INSERT INTO meta VALUES ('schema', '4') ON CONFLICT DO UPDATE SET value = excluded.value;
