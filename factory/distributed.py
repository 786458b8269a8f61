"""`factory generate RECIPE --executor ray`: the same rejection sampling on a Ray cluster, into the one DuckDB store.

The driver (the `factory` process) prepares the job as a local run does (`run.run_recipe`: the recipe, its prompts,
decontamination and prompt dedup against the store, the run row), cuts the pending prompts into shards and hands
them to a Ray Data pipeline: `map_batches` over an actor pool, one engine and its verification workers per actor
(`ShardWorker`). An actor samples a shard completely with this project's own sampler (rounds, verdicts, filters)
and returns its candidates. Not `ray.data.llm`: its vLLM stage keeps only the first of n samples, has no CPU path,
and cannot run rounds with verdicts in between.

The driver lands each shard in one transaction (`Landing`): response dedup over everything stored so far (so a
near-duplicate from two workers is caught), examples kept up to accept_per_prompt in sample order, as a local run
keeps them. A prompt that dedup leaves unfinished goes into a later pass, its samples counted. A worker that dies
mid-shard has the shard retried by Ray (nothing of it was stored); a shard that comes back twice lands once; a
driver killed and started again resumes the run and cuts shards of what is still pending only.

Without --address the command starts a local Ray cluster and stops it at the end. With --address it joins a cluster
started with `ray start` (docs/cluster.md says how the token reaches each node and the command); where no head answers,
or the head refuses the token, it stops in seconds with the fix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
import zlib
from dataclasses import asdict, dataclass, field

from factory import judging, sampler
from factory.chat import example
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.rounds import finished
from factory.run import Job, make_pool
from factory.sampler import Tally, sample
from factory.schedule import DEFAULT_PROMPTS
from factory.sources import Prompt
from factory.stages import Gate
from factory.store import Batch, now
from filters.base import Verdict, narrow
from filters.registry import DEDUP

log = logging.getLogger(__name__)

HOLD = "FACTORY_SHARD_HOLD"  # tests only: a folder; see `_hold`
LOCAL_OBJECT_STORE = 2**30  # bytes of shared memory for shard results on a local cluster (a shard is a few MB)
REACH_S = 10  # seconds to open a connection to --address (ray.init retries one that nothing answers for minutes)
TOKEN_HELP = (
    "the head's token in ~/.ray/auth_token (copy the head's file; `ray get-auth-token` there prints it) or in a file"
    " named by RAY_AUTH_TOKEN_PATH; see docs/cluster.md"
)


@dataclass
class ShardTally(Tally):
    """A local run's counters, plus shards and what each worker did."""

    shards: int = 0
    shards_done: int = 0
    workers: dict = field(default_factory=dict)  # "host:pid" -> {"shards", "candidates", "tokens", "seconds"}


class _Sink:
    """The store a worker's sampler writes to (a `sampler.Sink`): the shard's candidates, kept in memory for the
    driver."""

    def __init__(self):
        self.candidates: list[dict] = []
        self.kept: dict[str, int] = {}
        self.canaries: list[dict] = []  # the judge's canary checks, for the driver to keep in the run's row

    def progress(self, run_id: str) -> dict:
        return {}  # what came before is in the shard's `before`

    def commit(self, batch: Batch) -> None:
        self.candidates += batch.candidates
        for e in batch.examples:
            self.kept[e["prompt_id"]] = self.kept.get(e["prompt_id"], 0) + 1

    def post_progress(self, snapshot: dict) -> None:
        pass

    def add_canaries(self, run_id: str, result: dict) -> None:
        self.canaries.append(result)


class ShardWorker:
    """One actor of the pool: an engine and its verification workers, built once; each call samples one shard
    completely (response dedup within the shard included) and returns its candidates."""

    def __init__(self, recipe: Recipe, model: str, seed: int):
        from factory import engines, judging, models

        if recipe.engine.kind not in ("openai", "replay") and not os.path.exists(model):
            model = models.resolve(recipe.model)  # a node other than the driver's: its own copy or the hub's
        self.recipe = recipe
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.pool = make_pool(recipe)
        # every actor its own random stream: no two draw the same samples for a prompt
        self.engine = engines.build(recipe, model, seed=seed + zlib.crc32(self.name.encode()) % 2**20)
        self.pool.wait_ready()
        self.judge = judging.build(recipe, self.engine)
        self.vetted = self.judge is None or not recipe.judge.canaries  # its canaries are graded before its first shard
        # dedup within the shard here, so a prompt whose answers repeat goes on sampling; across shards the driver
        self.dedup = dataclasses.replace(recipe, filters=[DEDUP]) if DEDUP in recipe.filters else None

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        out = [json.dumps(self.shard(json.loads(s)), default=str) for s in batch["shard"]]
        return {"result": np.array(out, dtype=object)}

    def shard(self, shard: dict) -> dict:
        _hold(shard["id"])
        r, sink = self.recipe, _Sink()
        prompts = [Prompt(**p) for p in shard["prompts"]]
        before = {pid: tuple(v) for pid, v in shard["before"].items()}
        gate = Gate(self.dedup) if self.dedup is not None else None
        job = sampler.Job(r, prompts, sink, shard["run_id"], gate, before=before)
        refused, t = None, Tally()
        try:
            self._vet(prompts, sink)
            t = sample(job, self.engine, self.pool, judge=self.judge)
        except judging.JudgeRefused as e:  # the driver keeps what was sampled, then refuses the run
            refused = str(e)
        drawn: dict[str, int] = {}
        for c in sink.candidates:
            drawn[c["prompt_id"]] = drawn.get(c["prompt_id"], 0) + 1
        spent = [
            pid for pid, (d, k) in before.items() if not finished(r, d + drawn.get(pid, 0), k + sink.kept.get(pid, 0))
        ]
        return {
            "shard": shard["id"],
            "worker": self.name,
            "candidates": sink.candidates,
            "spent": spent,
            "tokens": t.new_tokens,
            "seconds": t.seconds,
            "canaries": sink.canaries,
            "refused": refused,
        }

    def _vet(self, prompts: list[Prompt], sink: _Sink) -> None:
        """Before this worker's first shard, its judge grades the canaries on the shard's first prompts."""
        if self.vetted:
            return
        self.vetted = True
        result = {**judging.check_canaries(self.judge, prompts), "after": 0}
        sink.add_canaries("", result)
        judging.refuse_if_fooled(result)

    def close(self) -> None:
        for part in ("engine", "pool"):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()
                setattr(self, part, None)

    def __del__(self):  # Ray Data deletes the actor's UDF when the pool shuts down gracefully
        self.close()


def _hold(shard_id: str) -> None:
    """Tests only: with FACTORY_SHARD_HOLD=DIR, a shard notes DIR/<shard>.<pid> and waits while DIR/hold or
    DIR/hold.<shard> exists, so a test can kill a worker or the driver while a shard is in progress."""
    folder = os.environ.get(HOLD)
    if not folder:
        return
    open(os.path.join(folder, f"{shard_id}.{os.getpid()}"), "w").close()
    while any(os.path.exists(os.path.join(folder, f)) for f in ("hold", f"hold.{shard_id}")):
        time.sleep(0.05)


class Landing:
    """The driver's side: cuts shards of pending prompts and lands each result in the store, whole."""

    def __init__(self, job: Job, tally: ShardTally, update=None):
        self.job, self.r, self.tally, self.update = job, job.recipe, tally, update
        self.prompts = {p.prompt_id: p for p in job.prompts}  # a repeated prompt (same source and text) once
        self.state = {pid: list(job.before.get(pid, (0, 0))) for pid in self.prompts}  # [drawn, kept]
        for pid, (drawn, passed, kept, tokens) in (job.store.progress(job.run_id) if job.run_id else {}).items():
            if pid in self.state:
                self.state[pid][0] += drawn
                self.state[pid][1] += kept
                tally.candidates, tally.passed = tally.candidates + drawn, tally.passed + passed
                tally.examples, tally.tokens = tally.examples + kept, tally.tokens + tokens
        tally.prompts = len(self.prompts)
        tally.prompts_done = sum(finished(self.r, *s) for s in self.state.values())
        tally.prompts_solved = sum(s[1] > 0 for s in self.state.values())
        self.sent: dict[str, dict[str, int]] = {}  # shard id -> {prompt_id: drawn when sent}
        self.ended: set[str] = set()  # the engine had no more for them (a replay that ran out)
        self.passes, self.started = 0, time.monotonic()

    def pending(self) -> list[str]:
        return [pid for pid, s in self.state.items() if not finished(self.r, *s) and pid not in self.ended]

    def cut(self, todo: list[str], size: int) -> list[dict]:
        """The next pass's shards: `size` prompts each, with what each drew and kept so far."""
        shards = []
        for i in range(0, len(todo), size):
            sid = f"{self.passes}-{i // size}"
            part = todo[i : i + size]
            self.sent[sid] = {pid: self.state[pid][0] for pid in part}
            shards.append(
                {
                    "id": sid,
                    "run_id": self.job.run_id,
                    "prompts": [asdict(self.prompts[pid]) for pid in part],
                    "before": {pid: self.state[pid] for pid in part},
                }
            )
        self.passes += 1
        self.tally.shards += len(shards)
        return shards

    def land(self, res: dict) -> list[str]:
        """Store one shard's candidates in one transaction; return its prompts that need another pass."""
        sent = self.sent.pop(res["shard"], None)
        if sent is None:  # it came back twice (Ray retried a task whose first result had arrived): landed already
            return []
        order = {pid: i for i, pid in enumerate(sent)}
        rows = sorted(
            (c for c in res["candidates"] if sent.get(c["prompt_id"]) == self.state[c["prompt_id"]][0]),
            key=lambda c: (order[c["prompt_id"]], c["sample_index"]),
        )
        flag = self.job.flags.get  # scores every candidate of a prompt carries (weak tests allowed)
        verdicts = [
            Verdict(c["accepted"], c["reason"], json.loads(c["scores"]) | flag(c["prompt_id"], {})) for c in rows
        ]
        gate = self.job.gate
        if gate.active:  # over everything stored, other workers' shards included
            narrow(verdicts, [(c["candidate_id"], c["text"]) for c in rows], gate)
        batch, state = Batch([], [], [], dedup=[]), {pid: list(self.state[pid]) for pid in sent}
        for c, v in zip(rows, verdicts, strict=True):
            p, s = self.prompts[c["prompt_id"]], state[c["prompt_id"]]
            c.update(accepted=v.accepted, reason=v.reason, scores=json.dumps(v.scores), created_at=now())
            batch.candidates.append(c)
            s[0] += 1
            if v.accepted and s[1] < self.r.rejection.accept_per_prompt:  # passed beyond k: candidates only
                s[1] += 1
                batch.examples.append(example(self.r, p, self.job.run_id, c["candidate_id"], c["text"], c["n_tokens"]))
            elif not v.accepted:
                self.tally.reasons[v.reason] = self.tally.reasons.get(v.reason, 0) + 1
        batch.prompts = [self.prompts[pid].row() for pid in sent if self.state[pid][0] == 0 < state[pid][0]]
        batch.dedup = gate.new_signatures()
        self.job.store.commit(batch)
        self.ended.update(res["spent"])
        left = [pid for pid in sent if not finished(self.r, *state[pid]) and pid not in self.ended]
        self.tally.prompts_done += len(sent) - len(left)
        if left:
            log.info("%d prompts of shard %s lost accepted answers to dedup: another pass", len(left), res["shard"])
        self._count(res, batch, state)
        for result in res.get("canaries", []):
            self.job.store.add_canaries(self.job.run_id, result)
        if res.get("refused"):
            raise judging.JudgeRefused(res["refused"])
        return left

    def _count(self, res: dict, batch: Batch, state: dict) -> None:
        t = self.tally
        t.prompts_solved += sum(self.state[pid][1] == 0 < s[1] for pid, s in state.items())
        self.state.update(state)
        tokens = sum(c["n_tokens"] for c in batch.candidates)
        t.candidates, t.new_candidates = t.candidates + len(batch.candidates), t.new_candidates + len(batch.candidates)
        t.tokens, t.new_tokens = t.tokens + tokens, t.new_tokens + tokens
        t.passed += sum(c["accepted"] for c in batch.candidates)
        t.examples += len(batch.examples)
        t.shards_done += 1
        w = t.workers.setdefault(res["worker"], {"shards": 0, "candidates": 0, "tokens": 0, "seconds": 0.0})
        w["shards"] += 1
        w["candidates"] += len(res["candidates"])
        w["tokens"] += sum(c["n_tokens"] for c in res["candidates"])
        w["seconds"] += res["seconds"]
        self.post_progress()

    def post_progress(self) -> None:
        self.tally.seconds = time.monotonic() - self.started
        self.job.store.post_progress({"run_id": self.job.run_id, "at": now(), **asdict(self.tally)})
        if self.update:
            self.update(self.tally)


def shard_size(r: Recipe, pending: int, workers: int, asked: int = 0) -> int:
    """Prompts per shard: `asked`, or several engine-fulls (the end of a shard leaves the engine part idle, so
    fewer, larger shards waste less), but no more than gives each worker a shard."""
    if asked:
        return asked
    # an engine-full: batch_prompts, or (uncapped) the 2 x 1024 sequences an H100's vLLM holds, in rounds
    fill = 4 * (r.rejection.batch_prompts or max(DEFAULT_PROMPTS, 2048 // r.rejection.round_size))
    return max(1, min(fill, -(-pending // max(workers, 1))))


def executor(workers: int = 0, address: str | None = None, shard_prompts: int = 0):
    """`run.run_recipe`'s executor for Ray: `workers` actors (0: one per GPU group of the cluster, else 1)."""

    def run(job: Job, bar, update) -> ShardTally:
        ray = _ray()
        bar("starting Ray" if address is None else f"connecting to Ray at {address}")
        _init(ray, address, workers)
        try:
            n, pipeline = _pool(ray, job, workers)
            bar(f"sampling ({n} Ray workers)", total=len(job.prompts))
            return drive(job, update, pipeline, n, shard_prompts, {"ray": ray.__version__})
        finally:
            ray.shutdown()

    return run


def drive(job: Job, update, pipeline, workers: int, shard_prompts: int = 0, versions: dict | None = None) -> ShardTally:
    """Sample the job's pending prompts in shards: `pipeline(shards)` yields each shard's result, which lands in the
    store as it comes; prompts that dedup across shards left unfinished go into another pass."""
    from importlib.metadata import version

    r = job.recipe
    if r.budget.tokens or r.budget.hours:  # each worker would count only its own shard's spend
        raise FactoryError("budget: a budget is kept by --executor local only; leave it out for --executor ray")
    tally = ShardTally(prompts_set_aside=len(job.dropped))
    land = Landing(job, tally, update)
    from factory.engines import resolve_kind

    kind = resolve_kind(r.engine.kind)  # `auto` as this machine resolves it (workers alike are assumed)
    job.begin({"factory": version("factory"), "engine": f"{kind} on {workers} workers", **(versions or {})}, kind)
    land.post_progress()
    while todo := land.pending():
        shards = land.cut(todo, shard_size(r, len(todo), workers, shard_prompts))
        for res in pipeline(shards):
            land.land(res)
        if land.sent:
            raise FactoryError(f"no result came back for shards {sorted(land.sent)}; run the command again to resume")
    land.post_progress()
    return tally


def _pool(ray, job: Job, workers: int):
    """(workers, pipeline): a Ray Data pipeline over shards, an actor pool of `ShardWorker`s (GPUs per actor: the
    engine's tensor_parallel_size where the cluster has GPUs)."""
    r = job.recipe
    gpus = ray.cluster_resources().get("GPU", 0) if r.engine.kind in ("auto", "vllm", "transformers") else 0
    tp = r.engine.tensor_parallel_size
    workers = workers or (int(gpus // tp) if gpus else 1)
    if gpus and gpus < workers * tp:
        raise FactoryError(
            f"--workers {workers} with engine.tensor_parallel_size={tp} needs {workers * tp} GPUs;"
            f" the cluster has {gpus:g}: use --workers {max(int(gpus // tp), 1)}"
        )
    ray.data.DataContext.get_current().enable_progress_bars = False  # the command has its own

    if r.engine.replay:  # the actors' working folder is not the command's
        r = dataclasses.replace(r, engine=dataclasses.replace(r.engine, replay=os.path.abspath(r.engine.replay)))

    def pipeline(shards: list[dict]):
        made = {"recipe": r, "model": job.model, "seed": job.seed}
        pool = ray.data.ActorPoolStrategy(size=min(workers, len(shards)), max_tasks_in_flight_per_actor=1)
        items = [{"shard": json.dumps(s)} for s in shards]  # one shard a block: one actor task each
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        # a dead actor is restarted and its shard retried: Ray Data's defaults for an actor pool (max_restarts=-1,
        # max_task_retries=-1, in ActorPoolMapOperator._apply_default_remote_args), which this relies on
        ds = ds.map_batches(
            ShardWorker, batch_size=1, compute=pool, num_cpus=1, num_gpus=tp if gpus else 0, fn_constructor_kwargs=made
        )
        # block by block as each lands, none held back (iter_rows prefetches: it would keep a finished shard
        # until the next one is done)
        for batch in ds.iter_batches(batch_size=None, prefetch_batches=0):
            for res in batch["result"]:
                yield json.loads(res)

    return workers, pipeline


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise FactoryError(f"--executor ray needs Ray Data ({e}): pip install -e '.[ray]'") from None
    return ray


def _init(ray, address: str | None, workers: int) -> None:
    """Join the cluster at `address`, or start a local one; workers get the FACTORY_ and VLLM_ settings."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("FACTORY_", "VLLM_"))}
    kw = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": env} if env else None,
    )
    if address:
        _reach(address)
        ray.init(address=address, **kw)
    else:
        # the raylet kills what a dead actor leaves behind (vLLM's processes, killed mid-start, would stay)
        os.environ.setdefault("RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper", "true")
        # Ray starts its workers at nice 15, below everything else on the machine; here the actors are the job (the
        # engines, and the verification workers they fork), so they run at the driver's priority: at 15, beside a
        # busy process they got a thirtieth of a core (a run of 8 replayed prompts beside two busy loops: 96 s, 11 s
        # alone)
        os.environ.setdefault("RAY_worker_niceness", "0")
        cpus = max(os.cpu_count() or 1, workers + 1)
        ray.init(address="local", num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE, **kw)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes would break the progress bar


def _reach(address: str) -> None:
    """Fail in seconds, with the fix, where ray.init would retry for minutes (nothing answers at `address`) or 20 s
    (the head wants a token this process does not send), or where the run would fail in Ray's internals (a head
    without token authentication, joined with RAY_AUTH_MODE=token: its workers cannot call back this process)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():  # "auto", "ray://...": Ray's own
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_S).close()
    except OSError as e:
        fix = f"start one on that machine with `ray start --head --port {port}`, or check the address"
        raise FactoryError(f"--address {address}: no Ray head answers there ({e}); {fix}") from None
    wants, mine = _wants_token(address), os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    if wants and not mine:
        fix = f"export RAY_AUTH_MODE=token, with {TOKEN_HELP}"
        raise FactoryError(f"--address {address}: the Ray head there wants a token and this command sends none: {fix}")
    if wants is False and mine:
        why = "runs without token authentication (whoever reaches it can run code on the cluster)"
        fix = "start it with a token (docs/cluster.md), or on a private network set RAY_AUTH_MODE=disabled here too"
        raise FactoryError(f"--address {address}: the Ray head there {why}, and RAY_AUTH_MODE=token here: {fix}")
    # ray.init's own checks without its retries (Ray 2.60's private API): a token here, then the head's answer to it
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError, RpcError

    try:
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
        GcsClient(address=address)
    except AuthenticationError as e:
        why = "no token was found here" if "no authentication token was found" in str(e) else "the head refused it"
        raise FactoryError(f"--address {address}: RAY_AUTH_MODE=token, but {why}: put {TOKEN_HELP}") from None
    except RpcError as e:
        fix = "give the port that `ray start --head --port` was given"
        raise FactoryError(f"--address {address}: something answers there, but not a Ray head ({e}); {fix}") from None


def _wants_token(address: str) -> bool | None:
    """Whether the head at `address` refuses a call that carries no token (None: no answer that tells)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=REACH_S)
        except grpc.RpcError as e:
            return True if e.code() == grpc.StatusCode.UNAUTHENTICATED else None
    return False
