"""How the sandbox says a program ended does not depend on how busy the host is, nor on whether it runs as root or
as an ordinary user: a program still running at its wall-clock deadline is a `timeout` whichever side ends it (the
host, or the sandbox's init when the host is late), a program that runs out of CPU time is a `timeout` whatever it
does with SIGXCPU, and only the harness writes to the reports' stream.

The late host is real: the test stops the host process (SIGSTOP) while its programs run and resumes it after the
sandbox's own clock has ended them, so that the host finds both pipes closed and its deadline long past."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import run_as

from filters import sandbox
from filters.base import Candidate
from filters.code import verify_code
from filters.sandbox import Limits

HE = {"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"}
IO = {"inputs": ["1 2\n"], "outputs": ["3\n"]}
BOOT = b"The first code to run inside the sandbox"  # in the command line of the sandbox's init and its program
WALL = 3.0  # the late host's programs: long enough to stop the host before its deadline, on a loaded machine too

# The host: a program that sleeps past the wall limit, run alone and as an answer to the code verifier, side by
# side. It prints its clock before starting them (their deadlines are after it), then what they gave, as JSON.
HOST = f"""
import json, sys, threading, time
from filters import sandbox
from filters.base import Candidate
from filters.code import verify_code

lim = sandbox.Limits(wall_s={WALL}, cpu_s={WALL})
sleeper = "import time\\ntime.sleep(60)\\n"
answer = Candidate("```python\\n" + sleeper + "def add(a, b):\\n    return a + b\\n```", "code", {HE!r}, think=False)
out = {{}}


def plain():
    res = sandbox.run(sleeper, limits=lim)
    out["plain"] = {{"timed_out": res.timed_out, "exit_code": res.exit_code}}


def judged():
    out["verdict"] = verify_code(answer, lim).reason


print(time.monotonic(), flush=True)
threads = [threading.Thread(target=f) for f in (plain, judged)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out), flush=True)
"""


def _parent(pid: str) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]


def _sandboxed_under(host: int) -> list[str]:
    """The sandbox processes (inits, programs) descended from `host`."""
    found = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            if BOOT not in Path(f"/proc/{d}/cmdline").read_bytes():
                continue
            p = d
            while p not in ("0", "1", str(host)):
                p = _parent(p)
        except (OSError, IndexError):
            continue
        if p == str(host):
            found.append(d)
    return found


def _late_host(mode: str) -> dict:
    """Run HOST as root or as a user, stop it while its programs sleep, resume it once they are gone."""
    with run_as.copy({"host.py": HOST}) as tmp:
        cmd = run_as.command(mode, "host.py")
        host = subprocess.Popen(cmd, cwd=tmp, env=run_as.env(tmp), stdout=subprocess.PIPE, text=True)
        try:
            start = float(host.stdout.readline())
            # both running: two processes of the plain run (init, program), three of the verifier's (init, test
            # process, candidate); the host now waits on their output
            while len(_sandboxed_under(host.pid)) < 5:
                assert host.poll() is None and time.monotonic() < start + WALL - 1, "the programs did not start"
                time.sleep(0.02)
            time.sleep(0.2)
            stopped = time.monotonic()
            os.kill(host.pid, signal.SIGSTOP)
            assert stopped < start + WALL - 0.5, "the host was stopped too late to be late"
            # the sandbox's init ends its program at the deadline (before: a second after its own start)
            time.sleep(max(0.0, stopped + WALL + 1.5 - time.monotonic()))
            gone = time.monotonic() + 10
            while _sandboxed_under(host.pid):
                assert time.monotonic() < gone, "the sandboxes outlived their deadline with the host stopped"
                time.sleep(0.05)
            assert time.monotonic() > start + WALL  # the host's deadline passed while it was stopped
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(host.pid, signal.SIGCONT)
        out, _ = host.communicate(timeout=60)
    assert host.returncode == 0
    return json.loads(out)


def test_a_program_past_its_deadline_is_a_timeout_when_the_host_is_late():
    with ThreadPoolExecutor(len(run_as.MODES)) as ex:
        got = dict(zip(run_as.MODES, ex.map(_late_host, run_as.MODES), strict=True))
    want = {"plain": {"timed_out": True, "exit_code": 137}, "verdict": "timeout"}
    assert got == {mode: want for mode in run_as.MODES}


IGNORE_XCPU = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
LOOP = "while True:\n    pass\n"


def test_a_program_that_ignores_sigxcpu_still_runs_out_of_cpu_time():
    """It runs on to the hard CPU limit's SIGKILL, a second later: a timeout all the same, never a runtime error
    (else its reason would depend on whether the wall clock came first). The wall limit is far away, so only CPU
    time, which load does not change, can end these."""
    lim = Limits(wall_s=30, cpu_s=1)

    def judged(ref: dict, code: str) -> str:
        return verify_code(Candidate(f"```python\n{IGNORE_XCPU}{code}```", "code", ref, think=False), lim).reason

    jobs = [
        lambda: sandbox.run(IGNORE_XCPU + LOOP, limits=lim),  # the sandbox's init reaps it
        lambda: judged(HE, "def add(a, b):\n    while True:\n        pass\n"),  # the harness's candidate process
        lambda: judged(IO, LOOP),  # a stdin/stdout case's own process
    ]
    with ThreadPoolExecutor(len(jobs)) as ex:
        plain, *reasons = ex.map(lambda job: job(), jobs)
    assert (plain.timed_out, plain.exit_code) == (True, 128 + signal.SIGXCPU), plain
    assert reasons == ["timeout", "timeout"]


# Reads the secret and writes into the sandbox's stdout through its init's descriptors: only an ordinary user's
# program could (as root the init is not dumpable), and the harness's nonce and reports travel there.
THROUGH_INIT = """
import os
try:
    os.write(1, open("/proc/1/fd/3", "rb").read())
except OSError:
    pass
try:
    fd = os.open("/proc/1/fd/1", os.O_WRONLY)
    os.write(fd, b"\\nforged by the program\\n")
except OSError:
    pass
"""
PROBE = f"""
import json, re
from filters import code, sandbox

lim = sandbox.Limits(wall_s=20, cpu_s=5)
plain = sandbox.run({THROUGH_INIT!r}, secret=b"the secret", limits=lim)
job = {{"format": "humaneval", "test": {HE["test"]!r}, "entry_point": "add", "prefix": "", "output_bytes": 1 << 16}}
res, _ = code._harness({THROUGH_INIT!r} + "def add(a, b):\\n    return a + b\\n", job, lim)
print(json.dumps({{"plain": plain.stdout, "harness": res.stdout.split()}}))
"""


def test_the_init_holds_neither_the_secret_nor_stdout_as_root_or_as_a_user():
    def probe(mode: str) -> dict:
        with run_as.copy({"probe.py": PROBE}) as tmp:
            res = subprocess.run(run_as.command(mode, "probe.py"), cwd=tmp, env=run_as.env(tmp), capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout)

    for mode in run_as.MODES:
        got = probe(mode)
        assert got["plain"] == "", mode  # nothing read from the init's fd 3, nothing written to its fd 1
        nonce, *report = got["harness"]  # one report line: "<nonce> 0 passed -", and nothing forged
        assert len(nonce) == 32 and report == ["0", "passed", "-"], (mode, got["harness"])
