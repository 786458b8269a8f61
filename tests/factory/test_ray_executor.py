"""`factory generate --executor ray`: shards of prompts sampled by actors, landed in the one store as a local run.

The first tests run the driver's side (shards, landing, dedup across shards, another pass) in this process with
the worker called directly; the slow ones run the command on a local Ray cluster: against a local run's store (with
one of two actors killed mid-shard), with the driver killed and started again, and once on the real vLLM engine; and
on a cluster started with `ray start` (a head and worker nodes on this machine, with a token), a worker node killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import DEMO_RECORDING, DEMO_SETTINGS, FACTORY, REPLAY, ROOT, rows, run_cli

from factory.distributed import HOLD, ShardWorker, drive
from factory.run import prepare, run_recipe
from factory.store import StoreWriter

CANDIDATES = "SELECT prompt_id, sample_index, text, accepted, reason FROM candidates ORDER BY ALL"
EXAMPLES = "SELECT c.prompt_id, c.sample_index FROM examples JOIN candidates c USING (candidate_id) ORDER BY ALL"
# (prompt, samples drawn, examples kept) for the rule: enough accepted, or max_samples spent, or the recording out
PER_PROMPT = """SELECT p.prompt, count(*), count(e.example_id), list(c.sample_index ORDER BY c.sample_index)
                FROM candidates c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
                GROUP BY 1 ORDER BY 1"""
SETS = [v for k, v in zip(DEMO_SETTINGS, DEMO_SETTINGS[1:], strict=False) if k == "--set"]


def _recording() -> list[dict]:
    return [json.loads(line) for line in DEMO_RECORDING.read_text().splitlines()]


def _in_process(job, twice: str | None = None):
    """The pipeline without Ray: one worker in this process; the shard `twice` comes back twice."""
    worker = ShardWorker(job.recipe, job.model, job.seed)

    def pipeline(shards):
        for s in shards:
            res = worker.shard(s)
            yield res
            if s["id"] == twice:
                yield res

    return worker, pipeline


def _generate_here(demo_recipe, db: Path, sets: list[str], shard_prompts: int, twice: str | None = None):
    r, prompts = prepare(demo_recipe, 8, sets)
    workers = []

    def run(job, bar, update):
        worker, pipeline = _in_process(job, twice)
        workers.append(worker)
        try:
            return drive(job, update, pipeline, 1, shard_prompts)
        finally:
            worker.close()

    return run_recipe(r, prompts, db, executor=run)[0]


def _ended_by_the_rule(db: Path, recorded: dict[str, int], k: int = 1, most: int = 8) -> None:
    for prompt, drawn, kept, indices in rows(db, PER_PROMPT):
        assert indices == list(range(drawn))  # no sample twice, none skipped
        assert kept == k or drawn == min(most, recorded[prompt]), (prompt, drawn, kept)


def test_shards_store_what_a_local_run_stores(tmp_path, demo_recipe, demo_store):
    """Shards of 3 prompts, one landed twice, give the local replay run's candidates and examples."""
    db = tmp_path / "f.duckdb"
    tally = _generate_here(demo_recipe, db, [*SETS, *REPLAY[1::2]], shard_prompts=3, twice="0-1")
    assert (tally.shards, tally.shards_done) == (3, 3)  # 8 prompts: 3 + 3 + 2, the repeated result landed once
    assert rows(db, CANDIDATES) == rows(demo_store, CANDIDATES)
    assert rows(db, EXAMPLES) == rows(demo_store, EXAMPLES)
    assert {r for *_, r in rows(db, CANDIDATES)} == {None, "wrong_answer", "near_duplicate"}
    with StoreWriter(db) as store:
        assert json.loads(store.snapshot_path.read_text())["shards_done"] == 3
    [(status,)] = rows(db, "SELECT status FROM runs")
    assert status == "complete"


def _twin_recording(tmp_path, demo_recipe) -> tuple[Path, str, str]:
    """The demo recording with one long answer shared (but for the number) by the 1st and the 5th prompt, drawn
    first by each: shards of 4 put them in different shards, so only the driver can see they are near-duplicates."""
    _, prompts = prepare(demo_recipe, 8, SETS)
    solved = {r["prompt"] for r in _recording() if r["accepted"]}
    a = next(p for p in prompts[:4] if p.prompt in solved)
    b = next(p for p in prompts[4:] if p.prompt in solved)
    said = "Let me add or subtract these two small numbers carefully, one step at a time, and check it twice."
    first = [{"prompt": p.prompt, "completion": f"{said} The answer is {p.reference['answer']}."} for p in (a, b)]
    path = tmp_path / "twins.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in first + _recording()))
    return path, a.prompt, b.prompt


def test_a_near_duplicate_from_two_shards_is_caught(tmp_path, demo_recipe):
    path, a, b = _twin_recording(tmp_path, demo_recipe)
    db = tmp_path / "f.duckdb"
    sets = [*SETS, "rejection.round_size=1", "engine.kind=replay", f"engine.replay={path}"]
    tally = _generate_here(demo_recipe, db, sets, shard_prompts=4)
    assert tally.shards == 3  # two shards, then the prompt whose answer dedup dropped in a pass of its own
    got = rows(db, "SELECT p.prompt, c.sample_index, c.reason FROM candidates c JOIN prompts p USING (prompt_id)")
    first = {p: reason for p, i, reason in got if i == 0 and p in (a, b)}
    assert first == {a: None, b: "near_duplicate"}  # the first shard's landed first
    kept = rows(db, "SELECT p.prompt, c.sample_index FROM examples JOIN candidates c USING (candidate_id)"
                    " JOIN prompts p ON p.prompt_id = c.prompt_id")  # fmt: skip
    again = 1 + min(r["sample_index"] for r in _recording() if r["prompt"] == b and r["accepted"])
    assert {(p, i) for p, i in kept if p in (a, b)} == {(a, 0), (b, again)}  # b sampled on once its twin was dropped
    recorded: dict[str, int] = {}
    for r in _lines(path):
        recorded[r["prompt"]] = recorded.get(r["prompt"], 0) + 1
    _ended_by_the_rule(db, recorded)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ray_is_imported_only_by_the_ray_executor(tmp_path, demo_recipe):
    code = "import sys, factory.cli, factory.run, factory.distributed; assert 'ray' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    db = str(tmp_path / "f.duckdb")
    for args, says in ((["--workers", "2"], "go with --executor ray"), (["--executor", "dask"], "use local or ray")):
        res = run_cli("generate", str(demo_recipe), "--db", db, *args)
        assert res.returncode == 2 and says in res.stderr, res.stderr[-2000:]


# On a local Ray cluster, started and stopped by the command


def _ray_processes() -> set[int]:
    """Processes of a Ray cluster (head, raylet, workers), by pid."""
    out = set()
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes() if d.name.isdigit() else b""
        except OSError:
            continue
        if cmd.startswith(b"ray::") or any(k in cmd for k in (b"raylet", b"gcs_server", b"site-packages/ray/")):
            out.add(int(d.name))
    return out


@pytest.fixture
def no_ray_left():
    """The test leaves no Ray process behind (a cluster the command started is stopped with it)."""
    before = _ray_processes()
    yield
    # a leak stays for good; a busy machine took over 30 s once to reap a killed worker's Ray process (gone later)
    deadline = time.monotonic() + 90
    while (left := _ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Ray processes left running: {sorted(left)}"


def _ray_args(demo_recipe, db: Path, *more: str) -> list[str]:
    return ["generate", str(demo_recipe), "--db", str(db), *DEMO_SETTINGS, *REPLAY, "--executor", "ray", *more]


def _start(args: list[str], hold: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([FACTORY, *args], cwd=ROOT, env=os.environ | (env or {}) | {HOLD: str(hold)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip


def _wait_for(what, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return got


def _same_as_local(db: Path, demo_store: Path) -> None:
    assert rows(db, CANDIDATES) == rows(demo_store, CANDIDATES)  # every prompt ended by the same rule, no sample twice
    assert rows(db, EXAMPLES) == rows(demo_store, EXAMPLES)
    assert rows(db, "SELECT count(*), count(DISTINCT candidate_id) FROM candidates")[0] == (34, 34)


@pytest.mark.slow
def test_a_ray_run_stores_what_a_local_run_stores_though_a_worker_is_killed(
    tmp_path, demo_recipe, demo_store, no_ray_left
):
    """Two actors, shards of 3 prompts; one actor is killed in the middle of its shard, which is sampled again."""
    db, hold = tmp_path / "f.duckdb", tmp_path / "hold"
    hold.mkdir()
    (hold / "hold").touch()  # every shard waits
    proc = _start(_ray_args(demo_recipe, db, "--workers", "2", "--shard-prompts", "3"), hold)
    try:
        first = _wait_for(lambda: sorted(hold.glob("0-*.*")))[0]
        shard, pid = first.name.rsplit(".", 1)
        assert os.getpriority(os.PRIO_PROCESS, int(pid)) == 0  # the actors run at the driver's priority, not Ray's 15
        os.kill(int(pid), signal.SIGKILL)  # the actor, in the middle of its shard
        (hold / "hold").unlink()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    tries = {f.name.rsplit(".", 1)[1] for f in hold.glob(f"{shard}.*")}
    assert pid in tries and len(tries) == 2  # sampled again (by the restarted actor or the other one)
    _same_as_local(db, demo_store)
    [(engine, status, versions)] = rows(db, "SELECT engine, status, versions FROM runs")
    assert (engine, status) == ("replay", "complete") and "on 2 workers" in json.loads(versions)["engine"]
    snap = json.loads(Path(f"{db}.progress.json").read_text())
    assert snap["shards_done"] == snap["shards"] == 3 and sum(w["shards"] for w in snap["workers"].values()) == 3
    assert "workers" in err and "tok/s" in err  # the summary, per worker


@pytest.mark.slow
def test_a_driver_killed_and_started_again_skips_the_shards_stored(tmp_path, demo_recipe, demo_store, no_ray_left):
    db, hold = tmp_path / "f.duckdb", tmp_path / "hold"
    hold.mkdir()
    (hold / "hold.0-2").touch()  # the third shard of two prompts waits; the first two land
    args = _ray_args(demo_recipe, db, "--workers", "1", "--shard-prompts", "2")
    proc = _start(args, hold)
    snapshot = Path(f"{db}.progress.json")
    try:
        _wait_for(lambda: list(hold.glob("0-2.*")))
        _wait_for(lambda: snapshot.exists() and json.loads(snapshot.read_text())["shards_done"] == 2)
        assert json.loads(snapshot.read_text())["prompts_done"] == 4  # progress as each shard lands
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and whatever shares its process group
        proc.communicate()
    stored = rows(db, "SELECT count(*) FROM candidates")[0][0]
    assert 0 < stored < 34
    (hold / "hold.0-2").unlink()
    res = run_cli(*args)  # the killed cluster's processes are gone too: `no_ray_left` checks at the end
    assert res.returncode == 0 and "(resumed)" in res.stderr, res.stderr[-3000:]
    assert f"({34 - stored} drawn now)" in res.stderr
    assert json.loads(snapshot.read_text())["shards"] == 2  # the 4 prompts left, in shards of 2
    _same_as_local(db, demo_store)


@pytest.mark.slow
def test_ray_with_the_real_vllm_engine(tmp_path, demo_recipe, no_ray_left):
    """The bundled SmolLM2 on vLLM in a Ray actor: each prompt ended by the rule, no sample twice."""
    db = tmp_path / "f.duckdb"
    args = ("--limit", "4", "--set", "rejection.max_samples=2", "--executor", "ray")
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *args)
    assert res.returncode == 0, res.stderr[-3000:]
    _, prompts = prepare(demo_recipe, 4, [])
    per = rows(db, """SELECT c.prompt_id, count(*), count(e.example_id), list(c.sample_index ORDER BY c.sample_index)
                      FROM candidates c LEFT JOIN examples e USING (candidate_id) GROUP BY 1""")  # fmt: skip
    assert {pid for pid, *_ in per} == {p.prompt_id for p in prompts}
    for _, n, kept, indices in per:
        assert indices == list(range(n)) and (kept == 1 or n == 2)
    [(engine, versions)] = rows(db, "SELECT engine, versions FROM runs")
    assert engine == "vllm" and "ray" in json.loads(versions)
    assert "tok/s" in res.stderr and "workers" in res.stderr


# On a cluster started with `ray start`, as docs/cluster.md starts one: a head and worker nodes, on this machine


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the name (state, ppid, ...), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    return (s := _stat(pid)) is not None and s[0] not in "ZX"


class Cluster:
    """Nodes started with `ray start --block`, each in a session of its own, all with one token (RAY_AUTH_MODE=token
    and a token file, as docs/cluster.md sets them on every machine) or, with token=False, all with
    RAY_AUTH_MODE=disabled.
    A node is killed whole by its session: not with `ray stop`, which stops every Ray cluster on the machine."""

    def __init__(self, token: bool = True):
        self.dir = Path(tempfile.mkdtemp(prefix="ray-"))  # short: a Ray session's socket paths must fit 107 bytes
        self.env = {"RAY_worker_niceness": "0", "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper": "true"}
        self.env["RAY_AUTH_MODE"] = "token" if token else "disabled"
        if token:
            path = self.dir / "token"
            path.write_text(uuid.uuid4().hex)
            path.chmod(0o600)
            self.env["RAY_AUTH_TOKEN_PATH"] = str(path)
        self.nodes: dict[str, subprocess.Popen] = {}
        self.address = ""

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """`ray start` a node (the head first) and wait until it has joined. `ray start` gives a node 30 s (a
        constant in Ray's node.py) to register with the head; on a busy machine (CI's, with the suite's other files
        beside this one) its raylet once took longer and the command gave up ("timed out during startup"). That is
        Ray's startup, not what these tests test: such a node is started again, up to three times."""
        for _ in range(3):
            node, log = self._start(name, *args)
            _wait_for(lambda: "Ray runtime started" in log.read_text() or node.poll() is not None)  # noqa: B023
            if node.poll() is None or "timed out during startup" not in log.read_text():
                break
            self._kill(node)
        assert node.poll() is None, log.read_text()[-3000:]
        return node

    def _start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
        ports += ["--metrics-export-port", "--node-manager-port", "--object-manager-port"]
        if name == "head":
            ports += ["--ray-client-server-port", "--dashboard-port", "--port"]
            args = ("--head", "--include-dashboard", "false", *args)
        else:
            args = ("--address", self.address, *args)
        # every port its own: two nodes on one machine would take the same defaults
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--block", *args, "--disable-usage-stats"]
        tries = len(list(self.dir.glob(f"{name}*.log")))
        cmd += ["--temp-dir", str(self.dir / f"{name}{tries}"), "--object-store-memory", str(2**27)]
        for flag, port in zip(ports, _free_ports(len(ports)), strict=True):
            cmd += [flag, str(port)]
        if name == "head":
            self.address = f"127.0.0.1:{cmd[-1]}"
        log = self.dir / f"{name}{tries}.log"
        with log.open("w") as out:
            node = subprocess.Popen(cmd, env=os.environ | self.env, stdout=out, stderr=out, start_new_session=True)
        self.nodes[name] = node
        return node, log

    @staticmethod
    def _kill(node: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()

    def raylet(self, node: subprocess.Popen) -> int:
        """The node's raylet: the child of its `ray start` that Ray's workers are children of."""
        for d in Path("/proc").iterdir():
            s = _stat(int(d.name)) if d.name.isdigit() else None
            if s and int(s[1]) == node.pid and (d / "cmdline").read_bytes().split(b"\0")[0].endswith(b"/raylet"):
                return int(d.name)
        raise AssertionError(f"no raylet under {node.args}")

    def stop(self) -> None:
        for node in self.nodes.values():
            self._kill(node)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def open_cluster():
    c = Cluster(token=False)
    yield c
    c.stop()


@pytest.mark.slow
def test_a_run_on_a_ray_start_cluster_stores_what_a_local_run_stores_though_a_worker_node_dies(
    tmp_path, demo_recipe, demo_store, no_ray_left, cluster
):
    """A head (where the command's driver joins) and a worker node, one CPU each: an actor on each. Mid-shard the
    worker node's raylet is killed, the node lost with its actor; the head's actor samples the lost shard again."""
    db, hold = tmp_path / "f.duckdb", tmp_path / "hold"
    hold.mkdir()
    (hold / "hold").touch()  # every shard waits
    head = cluster.start("head", "--num-cpus", "1")
    worker = cluster.start("worker", "--num-cpus", "1")
    args = _ray_args(demo_recipe, db, "--address", cluster.address, "--workers", "2", "--shard-prompts", "3")
    proc = _start(args, hold, cluster.env)
    try:
        notes = _wait_for(lambda: len(n := sorted(hold.glob("0-*.*"))) == 2 and n)
        on = {int(_stat(int(f.name.rsplit(".", 1)[1]))[1]): f.name.rsplit(".", 1) for f in notes}
        assert on.keys() == {cluster.raylet(head), cluster.raylet(worker)}  # one actor on each node
        raylet = cluster.raylet(worker)
        shard, pid = on[raylet]
        (hold / f"hold.{shard}").touch()  # its next try waits too
        os.kill(raylet, signal.SIGKILL)
        _wait_for(lambda: worker.poll() is not None and not _alive(int(pid)))  # the node's other processes, the actor
        (hold / "hold").unlink()  # the head's actor goes on
        again = _wait_for(lambda: [f for f in hold.glob(f"{shard}.*") if f.name != f"{shard}.{pid}"])
        assert int(_stat(int(again[0].name.rsplit(".", 1)[1]))[1]) == cluster.raylet(head)
        (hold / f"hold.{shard}").unlink()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    _same_as_local(db, demo_store)
    [(status, versions)] = rows(db, "SELECT status, versions FROM runs")
    assert status == "complete" and "on 2 workers" in json.loads(versions)["engine"]
    snap = json.loads(Path(f"{db}.progress.json").read_text())
    assert snap["shards_done"] == snap["shards"] == 3


@pytest.mark.slow
def test_a_head_and_the_command_that_disagree_on_the_token_or_no_head_is_a_clear_error_at_once(
    tmp_path, demo_recipe, cluster, open_cluster
):
    """Each in seconds, before a run begins. Without these checks the command retried for 20 s where the head wants
    another token, for minutes where nothing answers (run_cli's timeout fails), and where the head has no token it
    began a run that failed in Ray Data's internals."""
    cluster.start("head", "--num-cpus", "0")
    open_cluster.start("head", "--num-cpus", "0")
    wrong = tmp_path / "token"
    wrong.write_text(uuid.uuid4().hex)
    ours = cluster.env["RAY_AUTH_TOKEN_PATH"]
    cases = {
        "wants a token and this command sends none: export RAY_AUTH_MODE=token": (cluster.address, "disabled", ""),
        "runs without token authentication": (open_cluster.address, "token", ours),
        "the head refused it: put the head's token in ~/.ray/auth_token": (cluster.address, "token", wrong),
        "no Ray head answers there": (f"127.0.0.1:{_free_ports(1)[0]}", "token", ours),
    }
    for says, (address, mode, token) in cases.items():
        db = tmp_path / f"{len(says)}.duckdb"
        began = time.monotonic()
        env = {"RAY_AUTH_MODE": mode, "RAY_AUTH_TOKEN_PATH": str(token)}
        res = run_cli(*_ray_args(demo_recipe, db, "--address", address), timeout=120, **env)
        assert res.returncode == 2 and says in res.stderr, res.stderr[-2000:]
        assert time.monotonic() - began < 60
        assert rows(db, "SELECT count(*) FROM runs") == [(0,)]  # nothing begun
