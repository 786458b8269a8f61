"""Verification in worker processes, with a hard time limit per candidate.

The engine keeps generating while workers judge the previous batch: `submit` returns at once and a dispatcher
thread feeds idle workers. A check that runs past `timeout` (a pathological math-verify input, say) is not
waited for: its worker is killed and replaced, and the candidate is rejected as `verify_timeout`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import wait

from filters.base import Candidate, Verdict
from filters.registry import Settings

log = logging.getLogger(__name__)

# What a worker imports to judge anything: the forkserver imports it once, and each worker is a fork of it.
PRELOAD = ["factory.workers", "filters.registry", "filters.verify", "math_verify", "reasoning_gym"]


def _context():
    """Workers are forked from multiprocessing's forkserver, which imported PRELOAD once: a pool starts, and a worker
    killed past its timeout is replaced, without a fresh interpreter importing sympy, math-verify and reasoning-gym
    again (about a second of CPU a worker). Not plain `fork`: the parent holds threads (the engine's, the
    dispatcher's), and a fork of it would copy their locks mid-use."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # only before the process's forkserver starts; the same list every time
    return ctx


def _serve(conn, warm: bool, settings: Settings) -> None:
    """A worker: judge (candidate, filter names) pairs until told to stop."""
    from filters.registry import run_chain

    if warm:  # already done where the forkserver preloaded them (the usual case); else before the first real job
        for name in PRELOAD:
            importlib.import_module(name)
    if settings.prepare is not None:  # it builds its indexes on first use: here, not in the first timed job
        settings.prepare("")
    conn.send("ready")
    while (job := conn.recv()) is not None:
        cand, names = job
        try:
            conn.send(run_chain(cand, names, settings))
        except Exception as e:  # a verifier bug must not take the run down: record it
            conn.send(Verdict(False, "verify_error", {"error": f"{type(e).__name__}: {e}"[:500]}))


@dataclass
class _Worker:
    proc: mp.Process
    conn: object
    job: tuple | None = None  # (future, index) being judged
    started: float = 0.0


class VerifyPool:
    def __init__(self, workers: int = 2, timeout: float = 10.0, warm: bool = True, settings: Settings | None = None):
        self.timeout, self.warm, self.settings = timeout, warm, settings or Settings()
        self._ctx = _context()
        self._queue: deque = deque()  # (future, index, candidate, names)
        self._lock = threading.Condition()
        self._closed = False
        self.broken: str | None = None
        self._workers = [self._spawn() for _ in range(workers)]
        self._thread = threading.Thread(target=self._dispatch, daemon=True, name="verify-dispatch")
        self._thread.start()

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child, self.warm, self.settings), daemon=True)
        proc.start()
        child.close()
        w = _Worker(proc, parent)
        w.job = ("starting", None)
        w.started = time.monotonic()
        return w

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while any(w.job and w.job[0] == "starting" for w in self._workers):
            if self.broken or time.monotonic() > deadline:
                raise RuntimeError(self.broken or "verification workers did not start in time")
            time.sleep(0.05)

    def submit(self, items: list[tuple[Candidate, list[str]]]) -> Future:
        """Judge a batch; the future resolves to the verdicts in order."""
        if self.broken:
            raise RuntimeError(self.broken)
        fut: Future = Future()
        fut.results = [None] * len(items)
        fut.left = len(items)
        if not items:
            fut.set_result([])
            return fut
        with self._lock:
            self._queue.extend((fut, i, c, names) for i, (c, names) in enumerate(items))
            self._lock.notify()
        return fut

    def verdicts(self, items: list[tuple[Candidate, list[str]]]) -> list[Verdict]:
        """Judge a batch and wait: its verdicts in order (`submit` without waiting)."""
        return self.submit(items).result()

    def _dispatch(self) -> None:
        while not self._closed:
            self._feed()
            busy = [w for w in self._workers if w.job]
            if not busy:
                with self._lock:
                    if not self._queue and not self._closed:
                        self._lock.wait(0.5)
                continue
            for conn in wait([w.conn for w in busy], timeout=0.05):
                w = next(w for w in busy if w.conn is conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    self._replace(w, Verdict(False, "verify_crash", {}))
                    continue
                self._finish(w, msg)
            now = time.monotonic()
            for w in busy:
                limit = 120.0 if w.job and w.job[0] == "starting" else self.timeout
                if w.job and now - w.started > limit:
                    log.warning("verification ran past %.1fs; killing worker %s", limit, w.proc.pid)
                    self._replace(w, Verdict(False, "verify_timeout", {}))

    def _feed(self) -> None:
        for w in self._workers:
            if w.job is None:
                with self._lock:
                    if not self._queue:
                        return
                    fut, i, cand, names = self._queue.popleft()
                w.job, w.started = (fut, i), time.monotonic()
                try:
                    w.conn.send((cand, names))
                except OSError:  # it died while idle (the OOM killer, say): the job waits for a fresh worker
                    with self._lock:
                        self._queue.appendleft((fut, i, cand, names))
                    w.job = None
                    self._replace(w, Verdict(False, "verify_crash", {}))

    def _finish(self, w: _Worker, msg) -> None:
        job, w.job = w.job, None
        if job[0] == "starting":
            return
        fut, i = job
        fut.results[i] = msg
        fut.left -= 1
        if fut.left == 0:
            fut.set_result(fut.results)

    def _replace(self, w: _Worker, verdict: Verdict) -> None:
        w.proc.kill()
        w.proc.join()
        job = w.job
        if job and job[0] == "starting":  # a worker that cannot even start will not start next time either
            self.broken = f"a verification worker died while starting (exit code {w.proc.exitcode})"
            self._closed = True
            self._fail_all(RuntimeError(self.broken))
            return
        fresh = self._spawn()
        self._workers[self._workers.index(w)] = fresh
        if job and job[0] != "starting":
            w.job = job
            self._finish(w, verdict)

    def _fail_all(self, error: Exception) -> None:
        """Nothing more will be judged: every waiting batch gets the error instead of hanging."""
        with self._lock:
            futures = {id(job[0]): job[0] for job in self._queue}
            self._queue.clear()
        futures |= {id(w.job[0]): w.job[0] for w in self._workers if w.job and w.job[0] != "starting"}
        for fut in futures.values():
            if not fut.done():
                fut.set_exception(error)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._lock.notify()
        self._thread.join(timeout=5)
        for w in self._workers:
            if w.job and w.job[0] == "starting":  # still importing (a run that failed early): nothing to finish
                w.proc.kill()
                continue
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self._workers:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
