"""The sandbox's init against the program it runs, as root and as an unprivileged uid (bwrap then makes a user
namespace, and nothing but the init's own prctl makes it non-dumpable):

- the program can open none of the init's descriptors, nor its memory, and cannot ptrace it;
- a tracer that tries to hold the init at its exit (PTRACE_SEIZE with PTRACE_O_TRACEEXIT, where SIGKILL no longer
  frees it), from a helper process or a thread, leaves no process of the namespace on the host, and `run` returns
  within its wall time;
- the second wall alone: with the init weakened to stay dumpable, so that the tracer does hold it, the host's kill
  of the whole namespace still leaves nothing behind.

Each check runs `sandbox.run` in a host process of its own, as root or as the unprivileged uid (run_as), which
watches /proc while the program runs for the host pids of the tracer and of the init, and afterwards reports which
of them still exist (and kills them, so that a failing check leaves nothing behind either).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import run_as
from run_as import MODES

ROOT = Path(__file__).parent.parent.parent
WALL, SLACK = 3.0, 3.0  # run's wall limit; seconds past it for killing and reaping (the old wait alone was 5)

# Opens the init's descriptors and memory both ways and tries to ptrace it; prints what happened, as JSON.
REACH = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
got = {}
for path in ("/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/fd/2", "/proc/1/mem"):
    for name, flags in (("read", os.O_RDONLY), ("write", os.O_WRONLY)):
        try:
            os.close(os.open(path, flags | os.O_NONBLOCK))
            got[f"{path} {name}"] = "opened"
        except OSError as e:
            got[f"{path} {name}"] = type(e).__name__
got["ptrace"] = "attached" if libc.ptrace(0x4206, 1, None, None) == 0 else os.strerror(ctypes.get_errno())
got["CapEff"] = [ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("CapEff")][0]
print(json.dumps(got))
"""

# Seizes the init with PTRACE_O_TRACEEXIT from a helper (a forked process that sleeps, or a thread that spins) and
# never lets go; says whether the seize worked (the errno), then lingers a second so the host sees it. The program
# re-executes itself first with MARKER in its command line, for the host to find it.
TRACER = r"""
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
r, w = os.pipe()
def hold(spin):
    ok = libc.ptrace(0x4206, 1, None, 0x40) == 0  # PTRACE_SEIZE, PTRACE_O_TRACEEXIT
    os.write(w, b"%d" % (0 if ok else ctypes.get_errno()))
    while True:
        if not spin:
            time.sleep(1)
if KIND == "process":
    if os.fork() == 0:
        hold(False)
else:
    threading.Thread(target=hold, args=(True,)).start()
print("seize errno", int(os.read(r, 16)), flush=True)
time.sleep(1)
"""

# The host: runs the program given on stdin, watches for its processes meanwhile, and prints a JSON report.
HOST = r"""
import json, os, signal, sys, threading, time
from filters import sandbox

program, marker, wall = json.load(sys.stdin)


def read(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def parent(pid):
    stat = read(pid, "stat")
    return stat.rsplit(b")", 1)[1].split()[1].decode() if stat else "0"


def started(pid):  # the start time tells a process from a later one with the same pid
    stat = read(pid, "stat")
    return stat.rsplit(b")", 1)[1].split()[19].decode() if stat else None


seen, done = {}, threading.Event()


def watch():  # the marked processes (the program and its helper) and the init, the parent of the first of them
    while not done.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if marker.encode() not in read(pid, "cmdline"):
                continue
            while marker.encode() in read(pid, "cmdline"):
                seen.setdefault(pid, started(pid))
                pid = parent(pid)
            seen.setdefault(pid, started(pid))
        time.sleep(0.02)


watcher = threading.Thread(target=watch)
watcher.start()
t = time.monotonic()
try:
    res = sandbox.run(program, limits=sandbox.Limits(wall_s=wall))
finally:
    took = time.monotonic() - t
    done.set()
    watcher.join()
left = [pid for pid, start in seen.items() if start is not None and started(pid) == start]
for pid in left:
    try:
        os.kill(int(pid), signal.SIGKILL)  # the tracer among them: the init can then end too
    except OSError:
        pass
print(json.dumps({"seconds": took, "stdout": res.stdout, "stderr": res.stderr[-2000:], "seen": sorted(seen),
                  "left": left}))
"""


def host(mode: str, program: str, boot: str | None = None) -> dict:
    """HOST run as root or as the unprivileged uid on `program` (with `boot` in place of sandbox_boot.py)."""
    marker = f"marker-{os.urandom(6).hex()}"
    program = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-S', '-c', {program!r}, {marker!r}])\n"
    files = {"host.py": HOST} | ({"filters/sandbox_boot.py": boot} if boot is not None else {})
    with run_as.copy(files) as tmp:
        cmd = run_as.command(mode if os.geteuid() == 0 else "root", "host.py")  # as a user: as this one, directly
        res = subprocess.run(cmd, cwd=tmp, env=run_as.env(tmp), input=json.dumps([program, marker, WALL]),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.mark.parametrize("mode", MODES)
def test_the_program_cannot_reach_into_its_init(mode):
    got = host(mode, REACH)
    reach = json.loads(got["stdout"])
    assert reach.pop("ptrace") == os.strerror(1), got  # EPERM
    assert reach.pop("CapEff") == "0" * 16  # no capability (CAP_SYS_PTRACE) that would override it
    assert reach == {k: "PermissionError" for k in reach} and len(reach) == 8, reach


@pytest.mark.parametrize("kind", ["process", "thread"])
@pytest.mark.parametrize("mode", MODES)
def test_a_tracer_of_the_init_leaves_nothing_behind(mode, kind):
    got = host(mode, TRACER.replace("KIND", repr(kind)))
    assert got["stdout"] == f"seize errno {1}\n", got  # EPERM: the init is not dumpable
    assert len(got["seen"]) >= 2, got  # the tracer's process and the init, at least, were found while they ran
    assert got["left"] == [], got
    assert got["seconds"] < WALL + SLACK, got


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_held_init_is_freed_by_killing_its_whole_namespace(kind):
    """With the init left dumpable, as an ordinary user the seize holds it; the host still leaves nothing."""
    boot = (ROOT / "filters" / "sandbox_boot.py").read_text()
    weak = boot.replace("    no_dump()\n", "")
    assert weak != boot
    got = host("user", TRACER.replace("KIND", repr(kind)), boot=weak)
    assert got["stdout"] == "seize errno 0\n", got  # held: the attack works against this init
    assert len(got["seen"]) >= 2, got
    assert got["left"] == [], got
    assert got["seconds"] < WALL + SLACK, got
