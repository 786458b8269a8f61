"""The cost ledger read back: prompt classes by difficulty, and what each class cost per kept example.

A prompt's difficulty is its pass rate (candidates accepted over drawn), put in one of four classes; `factory stats`,
`factory report`, the dataset card and the forecast (factory/forecast.py) all use these, so a class means the same
everywhere.
"""

from __future__ import annotations

# (lowest pass rate, name), hardest last; a pass rate of 0 is "unsolved"
DIFFICULTY = ((0.5, "easy"), (0.1, "medium"), (1e-12, "hard"))
UNSOLVED = "unsolved"
ORDER = [name for _, name in DIFFICULTY] + [UNSOLVED]
RANGES = {"easy": ">= 0.5", "medium": "0.1-0.5", "hard": "0-0.1", "unsolved": "0"}


def difficulty(pass_rate: float) -> str:
    """The class of a prompt that passed this share of its candidates."""
    return next((name for low, name in DIFFICULTY if pass_rate >= low), UNSOLVED)


def difficulty_sql(col: str) -> str:
    """`difficulty` as a SQL expression over the pass-rate column `col`."""
    whens = " ".join(f"WHEN {col} >= {low} THEN '{name}'" for low, name in DIFFICULTY)
    return f"CASE {whens} ELSE '{UNSOLVED}' END"


def per_example(row: dict) -> dict:
    """A ledger row's cost per kept example (None where none was kept): tokens (prompt and completion), engine
    seconds, and the share of its candidates cut at max_tokens."""
    kept = row["examples"]
    tokens = row["tokens"] + row["prompt_tokens"]
    return {
        "tokens_per_example": tokens / kept if kept else None,
        "seconds_per_example": (row["engine_seconds"] or 0.0) / kept if kept else None,
        "truncated_share": row["truncated"] / row["candidates"] if row["candidates"] else 0.0,
    }


def sort_key(row: dict) -> tuple:
    return (row["source"], row["task"], ORDER.index(row["difficulty"]))
