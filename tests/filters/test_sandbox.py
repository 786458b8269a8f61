"""Attacks on the sandbox: each ends within its limits with a failing verdict where the code is wrong, leaves the host
untouched (no connection, no secret, no file, no process), and the next record is judged as usual.

The attacks come as answers to a small HumanEval-style problem (`add`), run by the code verifier as in a real run,
or as plain programs through `sandbox.run` where a measurement is the point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from filters import sandbox
from filters.base import Candidate
from filters.code import verify_code
from filters.sandbox import Limits, run

# A wall limit far past what the programs need, so that on a busy machine too only what they do decides how they end;
# SHORT for the two that end only at the wall clock (a fork bomb, a sleep).
LIM = Limits(wall_s=20, cpu_s=2, memory_mb=256, processes=16, file_mb=4, output_kb=64, disk_mb=16)
SHORT = dataclasses.replace(LIM, wall_s=3)
SLACK = 3.0  # seconds past wall_s for killing and reaping on a busy machine (its own end would be 60 s past)
TEST = {"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"}
ADD = "def add(a, b):\n    return a + b\n"


def answer(code: str) -> Candidate:
    return Candidate(f"The solution:\n```python\n{code}\n```\n", "code", TEST, think=False)


def judged(code: str, lim: Limits = LIM):
    t = time.monotonic()
    v = verify_code(answer(code), lim)
    took = time.monotonic() - t
    assert took < lim.wall_s + SLACK, f"took {took:.1f}s"
    assert verify_code(answer(ADD), LIM).accepted  # the run goes on with the next record
    return v


def processes_with(marker: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if d.isdigit() and marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                found.append(int(d))
    return found


def reexec_with(marker: str, code: str) -> str:
    """A program that becomes `code` with `marker` in its command line, so the host can find its processes."""
    return f"import os, sys\nos.execv(sys.executable, [sys.executable, '-S', '-c', {code!r}, {marker!r}])\n"


@contextlib.contextmanager
def listener():
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    seen, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, addr = srv.accept()
                seen.append(addr)
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], seen
    finally:
        stop.set()
        t.join()
        srv.close()


def test_isolation_is_available_here():
    assert sandbox.available() is None, f"install bubblewrap: {sandbox.available()}"


def test_fork_bomb_is_held_to_the_process_limit_and_leaves_nothing():
    marker = f"forkbomb-{secrets.token_hex(6)}"
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    peak, done = 0, threading.Event()

    def watch():  # the host sees the sandbox's processes: count them while the bomb goes off
        nonlocal peak
        while not done.is_set():
            peak = max(peak, len(processes_with(marker)))
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    try:
        res = run(reexec_with(marker, bomb), limits=SHORT)
    finally:
        done.set()
        w.join()
    assert res.timed_out
    assert 1 < peak <= LIM.processes
    assert processes_with(marker) == []
    assert judged(bomb + ADD, SHORT).reason == "timeout"  # an answer that goes off at import: the wall clock ends it


def test_the_process_limit_is_what_stops_forks():
    code = "import os, time\nn = 0\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n"
    code += "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
    code += "    except OSError:\n        break\nprint(n)\n"
    res = run(code, limits=LIM)
    assert res.exit_code == 0, res.stderr
    assert LIM.processes - 4 <= int(res.stdout) < LIM.processes  # held by the limit, not by something else
    assert not res.timed_out  # and the sleeping children died with the sandbox, not at its wall limit


def test_memory_bomb():
    v = judged("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n" + ADD)
    assert v.reason == "memory_limit"
    res = run("x = bytearray(300 * 2**20)", limits=LIM)
    assert res.memory_exceeded and res.exit_code == sandbox.MEMORY_EXIT


def test_infinite_loop_ends_at_the_wall_or_cpu_limit():
    assert judged("def add(a, b):\n    while True:\n        pass\n").reason == "timeout"
    res = run("import time\ntime.sleep(60)", limits=SHORT)  # no CPU used: only the wall clock stops it
    assert res.timed_out and SHORT.wall_s <= res.duration < SHORT.wall_s + SLACK


def test_gigabytes_of_output_are_cut_at_the_limit():
    v = judged("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n" + ADD)
    assert v.reason == "output_limit"
    res = run("import os\nwhile True:\n    os.write(2, b'y' * 65536)", limits=LIM)
    assert res.output_exceeded and len(res.stdout) + len(res.stderr) <= LIM.output_kb << 10
    assert not res.timed_out  # cut at once, not at the wall limit


def test_file_bomb_is_held_to_file_and_folder_sizes():
    one = "n = 0\ntry:\n    with open('big', 'wb') as f:\n        while True:\n"
    one += "            n += f.write(b'x' * 2**20)\nexcept OSError as e:\n    print(n, e.errno)\n"
    res = run(one, limits=LIM)
    n, errno = map(int, res.stdout.split())
    assert n <= LIM.file_mb << 20 and errno == 27  # EFBIG: RLIMIT_FSIZE holds on the work folder
    many = "n = 0\ntry:\n    for i in range(10**6):\n        with open(f'f{i}', 'wb') as f:\n"
    many += "            n += f.write(b'x' * 2**21)\nexcept OSError as e:\n    print(n, e.errno)\n"
    res = run(many, limits=LIM)
    n, errno = map(int, res.stdout.split())
    assert n <= LIM.disk_mb << 20 and errno == 28  # ENOSPC: the folder is full, not the host's disk
    v = judged("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)\n" + ADD)
    assert v.reason == "runtime_error"


def test_no_connection_reaches_a_listener_on_the_host():
    with listener() as (port, seen):
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n" + ADD
        v = judged(code)
        res = run(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                  "except OSError as e:\n    print(type(e).__name__)\n", limits=LIM)  # fmt: skip
        assert seen == []
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the listener does hear the host
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert v.reason == "runtime_error"
    assert res.stdout.strip() == "ConnectionRefusedError"
    assert len(seen) == 1


def test_a_program_inherits_no_descriptor_but_its_standard_streams():
    """An inheritable socket in the verifying process (a worker's pipe to its pool, the forkserver's) does not reach
    the program: it sees stdin, stdout and stderr, nothing else."""
    probe = ("import os\nfor f in sorted(os.listdir('/proc/self/fd'), key=int):\n    try:\n"
             "        print(f, os.readlink('/proc/self/fd/' + f))\n    except OSError:\n"
             "        pass  # the folder listdir had open\n")  # fmt: skip
    with socket.socket(socket.AF_UNIX) as s:
        fd = s.fileno()
        os.set_inheritable(fd, True)
        res = run(probe, limits=LIM)
        seen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, close_fds=False)
    assert f"{fd} socket:" in seen.stdout  # without the sandbox, the socket would be there
    fds = [line.split(" ", 1) for line in res.stdout.splitlines()]
    assert [f for f, _ in fds] == ["0", "1", "2"] and not any("socket" in what for _, what in fds), res.stdout


def test_no_program_reaches_the_verification_workers_forkserver():
    """The verification workers fork from a server that unpickles whatever its socket is sent, and runs it outside the
    sandbox: a program that reached that socket would be out. Its socket is in the host's temp folder; the sandbox's
    /tmp is its own."""
    from multiprocessing import forkserver

    from factory.workers import VerifyPool

    with VerifyPool(1, timeout=20) as pool:
        pool.wait_ready()
        path = forkserver._forkserver._forkserver_address
        probe = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({path!r})\n"
                 "    print('reached')\nexcept OSError as e:\n    print(type(e).__name__)\n")  # fmt: skip
        inside = run(probe, limits=LIM)
        outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert isinstance(path, str) and os.path.exists(os.path.dirname(path))
    assert outside.stdout.strip() == "reached"  # the probe works where the socket is in view
    assert inside.stdout.strip() == "FileNotFoundError", inside


def test_secret_file_and_environment_stay_out(tmp_path, monkeypatch):
    token, env_token = secrets.token_hex(16), secrets.token_hex(16)
    secret = tmp_path / "secret.txt"
    secret.write_text(token)
    monkeypatch.setenv("FACTORY_TEST_TOKEN", env_token)
    code = f"""import os, glob
for path in [{str(secret)!r}, '/proc/1/environ', '/proc/self/environ'] + glob.glob('/proc/*/environ'):
    try:
        print(open(path, 'rb').read())
    except OSError as e:
        print(path, type(e).__name__)
print(dict(os.environ))
print(os.listdir('/'), os.listdir('/etc'))
"""
    res = run(code, limits=LIM)
    assert res.exit_code == 0, res.stderr
    assert token not in res.stdout + res.stderr and env_token not in res.stdout + res.stderr
    assert f"{secret} FileNotFoundError" in res.stdout
    assert "FACTORY_TEST_TOKEN" not in res.stdout
    v = judged(f"def add(a, b):\n    return open({str(secret)!r}).read()\n")
    assert v.reason == "runtime_error"


def test_the_host_filesystem_is_not_visible():
    res = run("import json, os\nprint(json.dumps([os.listdir('/'), os.listdir('/etc'), os.getcwd()]))", limits=LIM)
    top, etc, cwd = json.loads(res.stdout)
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "tmp", "box"}
    prefix = Path(os.path.realpath(sys.base_prefix)).parts[1]  # where the interpreter lives, read-only
    assert set(top) <= system | {prefix} and "work" not in top and "home" not in top
    assert etc == ["ld.so.cache"] and cwd == sandbox.WORK


def test_writing_outside_its_folder_leaves_no_file(tmp_path):
    targets = [tmp_path / "escaped.txt", Path.home() / f"escaped-{secrets.token_hex(4)}", Path.cwd() / "escaped.txt"]
    code = "import os\nfor t in %r:\n    try:\n        os.makedirs(os.path.dirname(t), exist_ok=True)\n" % [
        str(t) for t in targets
    ]
    code += "        open(t, 'w').write('x')\n    except OSError:\n        pass\n"
    assert judged(code + ADD).accepted  # writing where it may not is no failure in itself
    res = run(code + "open('/usr/escaped', 'w')", limits=LIM)
    assert "Read-only file system" in res.stderr
    assert not any(t.exists() for t in targets) and not Path("/usr/escaped").exists()


def test_killing_its_parent_hurts_nobody():
    me = os.getpid()
    code = f"import os, signal\nfor pid in (os.getppid(), 1, {me}, -1):\n    try:\n"
    code += "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n" + ADD
    v = judged(code)
    assert v.reason == "runtime_error"  # the test process was killed: a verdict came back, and this process lives on
    assert os.getpid() == me


def test_a_daemon_left_behind_dies_with_the_sandbox():
    marker = f"daemon-{secrets.token_hex(6)}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-S', '-c', 'import time; time.sleep(60)', {marker!r}],"
        " start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    )
    assert judged(code + ADD).accepted
    for _ in range(5):  # gone by the time run returns, not a moment later
        res = run(code, limits=LIM)
        assert res.exit_code == 0, res.stderr
        assert processes_with(marker) == []


def test_a_killed_verifier_takes_its_sandbox_along():
    """The verification pool kills a worker that runs past its timeout: what it was running must die with it."""
    marker = f"orphan-{secrets.token_hex(6)}"
    host = "import sys\nfrom filters.sandbox import Limits, run\nrun(sys.stdin.read(), limits=Limits(wall_s=30))"
    worker = subprocess.Popen(
        [sys.executable, "-c", host],
        stdin=subprocess.PIPE,
        text=True,
    )
    worker.stdin.write(reexec_with(marker, "import time\ntime.sleep(60)"))
    worker.stdin.close()
    deadline = time.monotonic() + 20
    while not processes_with(marker):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 15  # with the worker: well before the sandbox's own wall limit would end it (30 s)
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


def test_shell_command_at_import_time(tmp_path):
    hit, keep = tmp_path / "pwned", tmp_path / "keep"
    keep.mkdir()
    (keep / "file.txt").write_text("still here")
    with listener() as (port, seen):
        shell = f"touch {hit}; rm -rf {keep}; bash -c 'echo > /dev/tcp/127.0.0.1/{port}'; env; cat /etc/passwd"
        v = judged(f"import os\nos.system({shell!r})\n" + ADD)
        assert seen == []
    assert v.accepted  # the function itself is right; the shell did nothing outside
    assert not hit.exists() and (keep / "file.txt").read_text() == "still here"


def test_deleting_a_host_folder_fails(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file.txt").write_text("still here")
    code = f"import shutil\nfor d in [{str(keep)!r}, '/box']:\n    shutil.rmtree(d, ignore_errors=True)\n"
    assert judged(code + ADD).accepted
    res = run(f"import shutil\nshutil.rmtree({str(keep)!r})", limits=LIM)
    assert "FileNotFoundError" in res.stderr
    assert (keep / "file.txt").read_text() == "still here"


@pytest.mark.parametrize("exit_", ["import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n", "raise SystemExit\n"])
def test_exiting_before_the_tests_never_passes(exit_):
    assert judged(exit_ + ADD).reason == "runtime_error"
    during = "def add(a, b):\n" + "".join(f"    {line}\n" for line in exit_.splitlines())
    assert judged(during).reason == "runtime_error"


def test_unisolated_is_refused_unless_asked_for(monkeypatch):
    monkeypatch.setattr(sandbox, "available", lambda: "no bwrap in this test")
    with pytest.raises(sandbox.SandboxUnavailable, match="no bwrap in this test.*allow_unisolated"):
        run("print(1)", limits=LIM)
    res = run("import os\nprint(1, sorted(os.environ))", limits=Limits(wall_s=3, allow_unisolated=True))
    assert res.exit_code == 0 and res.stdout.startswith("1 [")
    assert "FACTORY_TEST_TOKEN" not in res.stdout and "HOME" in res.stdout
