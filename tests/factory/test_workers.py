"""Verification workers: verdicts in order, a hard time limit per candidate, and a pool that outlives its workers.

The slow input is real: math-verify comparing 5 with a tower of powers works until its own 5 s alarm gives up.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from factory.workers import VerifyPool
from filters.base import Candidate

CHAIN = ["format", "verify"]
TOWER = "9^{9^{9^{9^{9}}}}"


def _math(gold: str, said: str, finish: str = "stop") -> tuple[Candidate, list[str]]:
    return Candidate(f"The answer is {said}", "math", {"answer": gold}, finish, think=False), CHAIN


def _slow() -> tuple[Candidate, list[str]]:
    return _math("5", TOWER)


@pytest.fixture(scope="module")
def pool():  # shared: starting workers costs a second or two each
    with VerifyPool(2, timeout=20) as p:
        p.wait_ready()
        yield p


def test_judges_a_batch_in_order(pool):
    items = [_math("4", "4"), _math("4", "5"), _math("4", "4", "length"), _math("1/2", "0.5"), _math("3", "-3")]
    items.append((Candidate("def f(): pass", "code", {"test": "", "entry_point": "f"}, think=False), CHAIN))
    verdicts = pool.verdicts(items * 3)
    reasons = [v.reason for v in verdicts]
    assert reasons == [None, "wrong_answer", "truncated", None, "wrong_answer", "no_verifier"] * 3
    assert [v.accepted for v in verdicts[:2]] == [True, False]
    assert pool.verdicts([]) == []


def test_batches_in_flight_together(pool):
    first, second = pool.submit([_math("4", "4")] * 4), pool.submit([_math("4", "5")] * 3)
    assert [v.reason for v in second.result(timeout=30)] == ["wrong_answer"] * 3
    assert [v.accepted for v in first.result(timeout=30)] == [True] * 4


def test_a_check_past_the_timeout_is_killed_and_the_pool_goes_on():
    # 3 s: room for a quick check on a busy machine, and under math-verify's own 5 s alarm, which would end the slow
    # one as a wrong_answer: verify_timeout says the pool killed it first
    with VerifyPool(1, timeout=3) as pool:
        pool.wait_ready()
        verdicts = pool.verdicts([_math("4", "4"), _math("4", "5"), _slow()])
        assert [v.reason for v in verdicts] == [None, "wrong_answer", "verify_timeout"]
        assert [v.reason for v in pool.verdicts([_math("2", "2"), _math("2", "3")])] == [None, "wrong_answer"]
        assert pool.broken is None


def test_math_verify_gives_up_on_its_own_within_the_pool_timeout(pool):
    # math-verify's signal alarm (5 s) fires first in a worker's main thread: a plain wrong_answer, no kill
    pids = {w.proc.pid for w in pool._workers}
    t = time.monotonic()
    assert [v.reason for v in pool.verdicts([_slow(), _math("4", "4")])] == ["wrong_answer", None]
    assert time.monotonic() - t > 4  # it worked until the alarm (a kill at the pool's 20 s would be verify_timeout)
    assert {w.proc.pid for w in pool._workers} == pids  # nothing was killed


def test_a_worker_killed_while_busy_gives_verify_crash(pool):
    fut = pool.submit([_slow(), _math("4", "4")])
    deadline = time.monotonic() + 10
    while not (busy := [w for w in pool._workers if w.job and w.job[0] is fut and w.job[1] == 0]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(busy[0].proc.pid, signal.SIGKILL)
    assert [v.reason for v in fut.result(timeout=30)] == ["verify_crash", None]
    assert [v.reason for v in pool.verdicts([_math("7", "8"), _math("7", "7")])] == ["wrong_answer", None]


def test_a_worker_dead_while_idle_is_replaced(pool):
    pool.wait_ready()
    victim = pool._workers[0].proc
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)  # dead before the batch is sent (a worker dying mid-job is verify_crash, as it should)
    assert victim.exitcode == -signal.SIGKILL
    verdicts = pool.submit([_math("4", "4"), _math("4", "5"), _math("4", "4")]).result(timeout=30)
    assert [v.reason for v in verdicts] == [None, "wrong_answer", None]  # not lost, not blamed on the candidate


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_workers_are_forked_from_a_server_that_imported_the_verifiers_once(pool):
    """Neither spawned (each would import sympy, math-verify and reasoning-gym again) nor forked from this process
    (its threads' locks would be copied mid-use): both workers, and a replacement, come from one forkserver."""
    from factory.workers import PRELOAD

    pool.wait_ready()
    parents = {_parent(w.proc.pid) for w in pool._workers}
    [server] = parents
    assert server != os.getpid()
    cmd = Path(f"/proc/{server}/cmdline").read_bytes().decode()
    assert "forkserver" in cmd and all(repr(m) in cmd for m in PRELOAD)
    victim = pool._workers[0].proc
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)
    assert [v.reason for v in pool.verdicts([_math("3", "3")] * 4)] == [None] * 4
    pool.wait_ready()
    assert victim not in [w.proc for w in pool._workers] and {_parent(w.proc.pid) for w in pool._workers} == {server}
