"""`factory publish` on a store made by a real demo run: the dry-run folder loads with `datasets`, the card parses
with huggingface_hub, the push (one commit, against a local stand-in for the Hub) lands the dry run's files byte
for byte, and the token is read from HF_TOKEN without ever being shown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest
from conftest import FACTORY, ROOT, rows, run_cli
from local_hub import LocalHub

pytestmark = pytest.mark.slow
TOKEN = "hf_testSECRETtoken0123456789abcdefXYZ"


def _publish(db, *args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HUB_OFFLINE": "0"}
    return subprocess.run([FACTORY, "publish", "--db", str(db), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=base | (env or {}))  # fmt: skip


def test_dry_run_writes_a_dataset_that_loads_and_a_card_that_parses(demo_store, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    out = tmp_path / "ds"
    res = _publish(demo_store, "--repo-id", "me/arith-demo", "--dry-run", str(out), env={"HF_TOKEN": TOKEN})
    assert res.returncode == 0, res.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md", "math/train-00000-of-00001.parquet"]  # fmt: skip
    n = rows(demo_store, "SELECT count(*) FROM examples")[0][0]
    cache = str(tmp_path / "cache")  # a fresh cache: datasets may key a local folder's cache by its name alone
    ds = datasets.load_dataset(str(out), cache_dir=cache)
    assert ds["train"].num_rows == n
    assert [m["role"] for m in ds["train"][0]["messages"]] == ["user", "assistant"]

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "apache-2.0" and card.data.task_categories == ["text-generation"]
    assert card.data.size_categories == ["n<1K"]
    assert card.data.configs == [{"config_name": "math", "default": True,
                                  "data_files": [{"split": "train", "path": "math/train-*.parquet"}]}]  # fmt: skip
    text = card.text
    [(run_id, recipe)] = rows(demo_store, "SELECT run_id, recipe FROM runs")
    for fact in ("smollm2-135m-instruct", run_id, "`temperature`=0.1", "basic_arithmetic", "wrong_answer",
                 "near_duplicate", "Jaccard threshold 0.6", "decontamination: prompts' 8-word n-grams", "Findings:",
                 "Checked against: MATH-500 (none), MATH (test, all 5,000) (none)", "GSM8K (none)"):  # fmt: skip
        assert fact in text, fact
    assert recipe.strip() in text  # the recipe as run
    acc = rows(demo_store, "SELECT count(*) FILTER (WHERE accepted) / count(*) FROM candidates")[0][0]
    assert f"{acc:.1%}" in text
    assert not any(TOKEN in p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())
    # a second dry run into the same folder replaces it
    assert _publish(demo_store, "--repo-id", "me/arith-demo", "--dry-run", str(out)).returncode == 0


def _two_tasks(demo_store, tmp_path):
    """A copy of the demo store whose first example is a code example: two tasks to publish."""
    db = tmp_path / "two.duckdb"
    shutil.copy(demo_store, db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE examples SET task = 'code' WHERE example_id IN (SELECT min(example_id) FROM examples)")
    con.close()
    return db


def test_one_config_per_task_and_a_default_with_all(demo_store, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    db = _two_tasks(demo_store, tmp_path)
    out = tmp_path / "ds"
    assert _publish(db, "--repo-id", "me/two", "--dry-run", str(out)).returncode == 0
    names = [c["config_name"] for c in DatasetCard.load(out / "README.md").data.configs]
    assert names == ["all", "math", "code"]
    n = rows(db, "SELECT count(*) FROM examples")[0][0]
    cache = str(tmp_path / "cache")
    assert datasets.load_dataset(str(out), cache_dir=cache)["train"].num_rows == n
    assert datasets.load_dataset(str(out), "code", cache_dir=cache)["train"]["task"] == ["code"]


class _Refuse(BaseHTTPRequestHandler):
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = json.dumps({"error": "refused by the test server"}).encode()
        self.send_response(403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


def test_push_reads_the_token_from_the_environment_and_never_shows_it(demo_store, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "hf_home"
    env = {"HF_TOKEN": TOKEN, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(home)}
    try:
        res = _publish(demo_store, "--repo-id", "me/arith-demo", "--private", env=env)
    finally:
        server.shutdown()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "publishing to me/arith-demo failed" in res.stderr
    assert TOKEN not in res.stdout + res.stderr
    [headers] = [h for m, p, h in _Refuse.seen if (m, p) == ("POST", "/api/repos/create")]
    assert headers.get("authorization") == f"Bearer {TOKEN}"  # the token came from HF_TOKEN, to the endpoint only
    assert "refused by the test server" in res.stderr, (_Refuse.seen, res.stderr)
    stored = [p for p in home.rglob("*") if p.is_file() and TOKEN in p.read_bytes().decode("latin-1")]
    assert stored == []  # and was not written anywhere


def _files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_lands_exactly_the_dry_run_in_one_commit(demo_store, tmp_path):
    db = _two_tasks(demo_store, tmp_path)
    dry = tmp_path / "dry"
    # small shards, so that each task's rows are cut into several, as a big store's are
    assert _publish(db, "--repo-id", "me/two", "--dry-run", str(dry), "--shard-size", "300B").returncode == 0
    assert len(list((dry / "math").glob("train-*.parquet"))) > 1
    with LocalHub(TOKEN) as hub:
        env = {"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
        res = _publish(db, "--repo-id", "me/two", "--private", "--shard-size", "300B", env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"to {hub.url}/datasets/me/two" in res.stderr and TOKEN not in res.stdout + res.stderr
        assert hub.repos == {"me/two": {"private": True}}
        assert _files(dry) == hub.files  # every shard and the card, byte for byte
        assert hub.commits == [f"factory publish: {len(hub.files)} files"]  # one commit: the whole folder
        # published again with only one task left: the other task's shards are removed, nothing else remains
        con = duckdb.connect(str(db))
        con.execute("DELETE FROM examples WHERE task = 'code'")
        con.close()
        assert _publish(db, "--repo-id", "me/two", "--dry-run", str(dry)).returncode == 0
        res = _publish(db, "--repo-id", "me/two", env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert _files(dry) == hub.files and not any(f.startswith("code/") for f in hub.files)
    repo_calls = [h.get("authorization") for m, p, h in hub.requests if p.startswith(("/api/datasets/", "/api/repos"))]
    assert repo_calls and set(repo_calls) == {f"Bearer {TOKEN}"}  # every call on the repo carried the token
    assert {h.get("authorization") for m, p, h in hub.requests} <= {f"Bearer {TOKEN}", None}
    stored = [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert stored == []


def test_no_token_and_a_bad_repo_id_are_named(demo_store, tmp_path):
    res = _publish(demo_store, "--repo-id", "me/arith-demo", env={"HF_HOME": str(tmp_path / "empty")})
    assert res.returncode == 2 and "no Hugging Face token: set HF_TOKEN" in res.stderr
    res = run_cli("publish", "--db", str(demo_store), "--repo-id", "not a repo", "--dry-run", str(tmp_path / "d"))
    assert res.returncode == 2 and "--repo-id 'not a repo': use ORG/NAME" in res.stderr
    assert not (tmp_path / "d").exists()
