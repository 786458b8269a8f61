-- The store's schema 1 (factory before the store was sized for 600k examples): kept to test the migration.

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
    status        VARCHAR             -- running | complete | interrupted
);

CREATE TABLE IF NOT EXISTS prompts (
    prompt_id     VARCHAR PRIMARY KEY, -- hash of source and text
    source        VARCHAR NOT NULL,
    task          VARCHAR NOT NULL,    -- math | code | general
    prompt        VARCHAR NOT NULL,
    reference     JSON,                -- the answer, or the tests
    metadata      JSON
);

CREATE TABLE IF NOT EXISTS candidates (
    candidate_id  VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    prompt_id     VARCHAR NOT NULL,
    sample_index  INTEGER NOT NULL,    -- 0.. per (run, prompt); samples drawn count toward max_samples
    text          VARCHAR NOT NULL,
    n_tokens      INTEGER,
    n_prompt_tokens INTEGER,
    finish_reason VARCHAR,
    accepted      BOOLEAN NOT NULL,    -- passed every filter
    reason        VARCHAR,             -- the first filter's reject code, NULL when accepted
    scores        JSON,
    created_at    TIMESTAMP,
    UNIQUE (run_id, prompt_id, sample_index)
);

CREATE TABLE IF NOT EXISTS examples (
    example_id    VARCHAR PRIMARY KEY,
    candidate_id  VARCHAR NOT NULL UNIQUE,
    prompt_id     VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    messages      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL, -- chat format, as TRL's SFTTrainer reads it
    task          VARCHAR,
    source        VARCHAR,
    n_tokens      INTEGER,
    created_at    TIMESTAMP
);

CREATE TABLE IF NOT EXISTS prompt_drops (     -- prompts a run did not sample: a benchmark leak, a near-duplicate
    run_id        VARCHAR NOT NULL,
    prompt_id     VARCHAR NOT NULL,
    reason        VARCHAR NOT NULL,            -- contaminated | near_duplicate
    scores        JSON,                        -- which benchmark item and n-gram matched; which prompt it repeats
    PRIMARY KEY (run_id, prompt_id)
);

CREATE TABLE IF NOT EXISTS dedup (            -- MinHash signatures of every kept text: dedup holds across runs
    scope         VARCHAR NOT NULL,            -- which text and settings, e.g. 'prompt/minhash-v1/w3-p128-s1-num'
    key           VARCHAR NOT NULL,            -- prompt_id or candidate_id of the kept text
    signature     BLOB NOT NULL,               -- num_perm little-endian uint32 MinHash values
    PRIMARY KEY (scope, key)
);
