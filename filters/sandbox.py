"""Run untrusted programs: a separate process tree with time, memory, process, file and output limits, no network,
no environment, and a read-only view of only what Python needs.

    res = run("print(input())", stdin=b"hi\\n", limits=Limits(wall_s=5))   # Result(exit_code=0, stdout="hi\\n", ...)

How each limit holds (tests/filters/test_sandbox.py attacks every one of them, test_sandbox_init.py the init):

- bubblewrap puts the program in new pid, net, ipc and uts namespaces (a user namespace too when we are not root).
  Net: only a loopback of its own, so nothing on the host, 127.0.0.1 included, can be reached. Pid: it sees only
  itself, and when its first process ends the kernel kills every process left in the namespace, daemons included.
  That first process is the boot code (`--as-pid-1`), run with the program's uid, so signals to pid 1 fare alike as
  root and as a user; it ends when the program does, when the host closes its pipes, or at the wall-clock deadline.
  It keeps neither the secret nor stdout and makes itself non-dumpable before the program starts, so that a program
  of its uid can neither open its descriptors through /proc/1/fd, read its memory, nor ptrace it (the program has no
  capability to override that). `run` returns only once the namespace's init is gone, which the kernel allows only
  after every other process in it; where the init lingers after its SIGKILL (a tracer in the namespace can stop it
  at its exit, where SIGKILL no longer frees it), `run` kills every process of the namespace, and below it, itself.
- Files: the root is an empty tmpfs with read-only binds of /usr, the /lib links and the interpreter's prefix; the
  program's files are copied in through descriptors as read-only /box/<name>, so nothing is written to the host's
  disk. /proc is the namespace's own, /dev a minimal one. The only writable place is /tmp, a tmpfs of `disk_mb`
  that disappears with the sandbox; RLIMIT_FSIZE caps each file at `file_mb`.
- Environment: cleared; only PATH, LANG, HOME, TMPDIR and PYTHONDONTWRITEBYTECODE are set.
- Processes: RLIMIT_NPROC, which the kernel does not enforce for root (uid 0) and counts per user. As root, the boot
  code (sandbox_boot.py) switches to a fresh random unprivileged uid after setting the limits, so the count is this
  sandbox's processes alone; as a normal user, bwrap's user namespace makes the count per sandbox instead.
- Memory: RLIMIT_AS per process. Time: RLIMIT_CPU per process, and a wall clock, kept both here and by the
  namespace's init (the same deadline on the same clock), so a program still running at the deadline is killed
  even while this host is too busy to act on time.
- Output: read in chunks; past `output_kb` the sandbox is killed at once, so gigabytes are never buffered.

How a run ended, whoever noticed first (the verdict reasons of filters.code follow it): `output_exceeded` if it wrote
more than `output_kb` (all it wrote before it ended is read, even after a deadline); `memory_exceeded` if it died of
MemoryError; `timed_out` if its CPU time ran out (SIGXCPU, or the hard limit's SIGKILL after a program that ignored
it) or it was killed at the wall-clock deadline, by us or by the init: killed, and the deadline past when we stopped
reading. A program that ended by itself keeps its own exit code, however late we read it.

Where bwrap is missing or the kernel refuses namespaces, `run` refuses, unless `Limits.allow_unisolated`: then the
program runs with rlimits, a clean environment and a temporary folder only (no network or file isolation; as root,
no process limit either).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import random
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MEMORY_EXIT = 86  # exit code of a program that died of MemoryError (sandbox_boot.MEMORY_EXIT)
BOX, WORK = "/box", "/tmp"  # inside: the program's files (read-only), its working folder (the only writable place)
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": WORK, "TMPDIR": WORK}
ENV["PYTHONDONTWRITEBYTECODE"] = "1"
_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN")  # all the boot code needs, as root, to give up root


@dataclass
class Limits:
    """Per-program limits; a recipe's `sandbox:` section. Defaults suit HumanEval-sized tests."""

    wall_s: float = 10.0  # wall-clock seconds for the whole program
    cpu_s: float = 10.0  # CPU seconds
    memory_mb: int = 512  # address space
    processes: int = 32  # processes and threads at once (no fork bomb gets through)
    file_mb: int = 16  # largest file it may write
    output_kb: int = 1024  # stdout + stderr kept; more is `output_limit`
    allow_unisolated: bool = False  # where namespaces are unavailable, run with rlimits only (unsafe; opt-in)
    disk_mb: int = 64  # all files in its working folder together (a tmpfs, so this is memory too)
    open_files: int = 256  # file descriptors at once


@dataclass
class Result:
    exit_code: int  # 128 + N (isolated) or -N (unisolated) when killed by signal N
    stdout: str
    stderr: str
    timed_out: bool = False  # killed at the wall-clock deadline, or its CPU time ran out
    memory_exceeded: bool = False  # it died of MemoryError (the address-space limit)
    output_exceeded: bool = False  # more than output_kb of stdout + stderr: killed, the rest dropped
    duration: float = 0.0  # seconds, start to end


class SandboxUnavailable(RuntimeError):
    pass


def run(
    source: str | None = None,
    *,
    argv: list[str] | None = None,
    files: dict[str, str | bytes] | None = None,
    stdin: str | bytes = b"",
    secret: bytes | None = None,
    limits: Limits | None = None,
) -> Result:
    """Run a Python program (`source`, as /box/main.py) or a command (`argv`) inside the sandbox.

    `files` go next to main.py in /box (read-only); the working folder /tmp starts empty. A file "main.pyc", the
    marshal of a code object this interpreter compiled, runs in place of main.py (no compile on every run).
    `secret` arrives on fd 3 and is never written to any file the program could find by name.
    """
    limits = limits or Limits()
    if (why := available()) is not None:
        if not limits.allow_unisolated:
            raise SandboxUnavailable(
                f"cannot isolate untrusted code here: {why}. Install bubblewrap (apt-get install bubblewrap) on a "
                "Linux host that allows namespaces, or set sandbox.allow_unisolated: true (unsafe: no network or "
                "file isolation)"
            )
        log.warning("running untrusted code without isolation (sandbox.allow_unisolated): %s", why)
    return _run(source, argv, files or {}, stdin, secret, limits, isolated=why is None)


@functools.cache
def available() -> str | None:
    """None where programs can be isolated here, else why not."""
    if not sys.platform.startswith("linux"):
        return f"namespaces need Linux, this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        res = _run("pass", None, {}, b"", None, Limits(wall_s=30, cpu_s=30), isolated=True)
    except OSError as e:
        return f"bwrap did not start: {e}"
    if res.exit_code != 0:
        return f"bwrap failed (exit code {res.exit_code}): {res.stderr.strip()[-300:]}"
    return None


def _run(source, argv, files, stdin, secret, limits: Limits, isolated: bool) -> Result:
    if source is not None:
        files = {**files, "main.py": source}
    deadline = time.monotonic() + limits.wall_s  # CLOCK_MONOTONIC: the sandbox's init reads the same clock
    with contextlib.ExitStack() as stack:
        fin, fsec = stack.enter_context(_unnamed(stdin)), stack.enter_context(_unnamed(secret))
        cfg = _config(limits, isolated, argv, fsec.fileno() if fsec else None) | {"deadline": deadline}
        if isolated:  # the files go in through descriptors: nothing is left on the host's disk, even if we are killed
            fds = {name: stack.enter_context(_unnamed(data)) for name, data in files.items()}
            cmd = _bwrap(fds, limits) + _python(cfg | {"box": BOX, "work": WORK, "init": True})
            return _launch(cmd, fin, [fsec, *fds.values()], limits, deadline, isolated, cwd="/")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-")))
        for name, data in files.items():
            (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
        (tmp / "work").mkdir()
        cmd = _python(cfg | {"box": str(tmp), "work": str(tmp / "work")})
        return _launch(cmd, fin, [fsec], limits, deadline, isolated, cwd=str(tmp / "work"))


def _python(cfg: dict) -> list[str]:
    return [_interpreter(), "-S", "-I", "-B", "-c", _boot(), repr(cfg)]


@contextlib.contextmanager
def _unnamed(data: str | bytes | None):
    """A file with no name (stdin, the secret): the program gets only an open descriptor, and a read-only one, so
    it cannot grow a file on the host's disk through it."""
    if data is None:
        yield None
        return
    with tempfile.TemporaryFile() as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        with open(f"/proc/self/fd/{f.fileno()}", "rb") as ro:  # reopens the unlinked file, read-only
            yield ro


def _config(limits: Limits, isolated: bool, argv, secret_fd) -> dict:
    root = os.geteuid() == 0
    return {
        "cpu_s": max(1, math.ceil(limits.cpu_s)),
        "memory_mb": limits.memory_mb,
        "file_mb": limits.file_mb,
        "open_files": limits.open_files,
        # without a namespace of its own the count would be the whole user's (or nothing, for root)
        "processes": limits.processes if isolated else 0,
        "uid": random.SystemRandom().randrange(1 << 20, 1 << 31) if isolated and root else None,
        "secret_fd": secret_fd,
        "argv": argv,
    }


def _bwrap(files: dict, limits: Limits) -> list[str]:
    args = [shutil.which("bwrap"), "--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--as-pid-1"]
    args += ["--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if os.geteuid() == 0:  # no user namespace: the boot code drops to an unprivileged uid instead
        args += ["--cap-drop", "ALL"] + [a for cap in _CAPS for a in ("--cap-add", cap)]
    else:
        args += ["--unshare-user"]
    for k, v in ENV.items():
        args += ["--setenv", k, v]
    args += _system_view()
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.disk_mb << 20), "--tmpfs", WORK]
    for name, f in files.items():  # bwrap copies each into a read-only file of its own
        args += ["--perms", "0644", "--ro-bind-data", str(f.fileno()), f"{BOX}/{name}"]
    return args + ["--chdir", WORK]


@functools.cache
def _system_view() -> list[str]:
    """Read-only binds of what the interpreter needs: /usr, the /lib links, and its own prefix when elsewhere."""
    args, bound = ["--ro-bind", "/usr", "/usr"], ["/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
            bound.append(name)
    args += ["--perms", "0755", "--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    made: set[str] = set()
    for path in (os.path.realpath(sys.base_prefix), os.path.dirname(_interpreter())):
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue
        # bwrap copies each parent's mode from the host (/root is 0700): make them 0755 so the dropped uid gets in
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", path, path]
        bound.append(path)
    return args


@functools.cache
def _interpreter() -> str:
    """The real interpreter of this Python (a venv's python is a link to it; its packages stay outside)."""
    v = sys.version_info
    for cand in (f"{sys.base_prefix}/bin/python{v.major}.{v.minor}", getattr(sys, "_base_executable", None)):
        if cand and os.path.exists(cand):
            return os.path.realpath(cand)
    return os.path.realpath(sys.executable)


@functools.cache
def _boot() -> str:
    return Path(__file__).with_name("sandbox_boot.py").read_text()


def _launch(cmd: list[str], fin, passed: list, limits: Limits, deadline: float, isolated: bool, cwd: str) -> Result:
    start, cap = deadline - limits.wall_s, limits.output_kb << 10
    fds = [f.fileno() for f in passed if f is not None]
    info, info_w = os.pipe() if isolated else (None, None)
    if isolated:  # bwrap tells us the host pid of the namespace's init here
        cmd = [cmd[0], "--info-fd", str(info_w), *cmd[1:]]
    proc = subprocess.Popen(
        cmd,
        stdin=fin if fin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=fds + ([info_w] if isolated else []),
        start_new_session=True,  # its own process group, killed as a whole
        env=dict(ENV),  # not even bwrap sees the user's environment
        cwd=cwd,
    )
    streams = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {fd: bytearray() for fd in streams}
    init = None
    try:
        if isolated:
            os.close(info_w)
            init = _init_of(info, deadline)
        _collect(proc, bufs, deadline, cap)
        stopped = time.monotonic()
        _end(proc, init)
        _collect(proc, bufs, time.monotonic() + 5.0, cap)  # what it wrote before it ended, unread if we were late
    finally:
        _end(proc, init)
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        proc.stderr.close()
        if info is not None:
            os.close(info)
        if init is not None:
            os.close(init.fd)
    sig = -code if code < 0 else code - 128 if isolated and code > 128 else 0
    out, err = (bytes(bufs[fd]) for fd in streams)
    return Result(
        exit_code=code,
        stdout=out[:cap].decode("utf-8", "replace"),
        stderr=err[:cap].decode("utf-8", "replace"),
        # SIGXCPU: RLIMIT_CPU's signal (the init reports a kill at the hard limit as it too); a SIGKILL with the
        # deadline past: we killed it there, or the init did while we were late (a program that ended by itself
        # before we read it kept its own code)
        timed_out=sig == signal.SIGXCPU or (sig == signal.SIGKILL and stopped >= deadline),
        memory_exceeded=code == MEMORY_EXIT,
        output_exceeded=len(out) + len(err) > cap,
        duration=time.monotonic() - start,
    )


@dataclass
class _Init:
    """The sandbox's init, as the host sees it: its pid, a pidfd that stays its own, and its pid namespace (st_dev,
    st_ino of /proc/PID/ns/pid; None where the host may not read it)."""

    pid: int
    fd: int
    ns: tuple[int, int] | None


def _end(proc: subprocess.Popen, init: _Init | None) -> None:
    """Kill the namespace's init, which takes every process in the namespace with it, and wait until they are all
    gone (_empty); then bwrap's process group. bwrap, their parent, goes last and is given a moment to end by itself,
    so that it reaps the init: else the host's pid 1 would, when it gets round to it."""
    if init is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(init.fd, signal.SIGKILL)
        _empty(init)
        with contextlib.suppress(ProcessLookupError):
            bwrap = os.pidfd_open(proc.pid)
            select.select([bwrap], [], [], BWRAP_S)
            os.close(bwrap)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _init_of(info: int, deadline: float) -> _Init | None:
    """The sandbox's init, from bwrap's --info-fd JSON (None if it never started, or already ended)."""
    data = b""
    while select.select([info], [], [], max(0.0, deadline - time.monotonic()))[0]:
        if not (chunk := os.read(info, 4096)):
            break
        data += chunk
    try:
        pid = json.loads(data)["child-pid"]
        fd = os.pidfd_open(pid)
    except (ValueError, KeyError, ProcessLookupError):
        return None
    ns = _ns(pid)
    try:
        signal.pidfd_send_signal(fd, 0)  # alive after the read: the namespace read was its own, not a new pid's
    except ProcessLookupError:
        ns = None  # ended already, and its namespace with it
    return _Init(pid, fd, ns)


def _ns(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    return st.st_dev, st.st_ino


# How long a killed init may take to end by itself before every process of its namespace is killed from here, and
# how long that may go on before we give up on it (a process that no signal can end, stuck in a driver)
LINGER_S, GIVE_UP_S = 0.2, 10.0
BWRAP_S = 1.0  # how long bwrap may take to report its init's end and exit


def _empty(init: _Init) -> None:
    """Wait for the killed init to end, which the kernel lets happen only once every process in its namespace is gone.

    A process in the namespace can hold it back: a tracer that stopped the init at its exit (PTRACE_O_TRACEEXIT)
    keeps it there whatever signal it gets, and the kernel kills the namespace's other processes only once the init
    is past that stop. So where the init lingers, every process of the namespace, and below it, is killed from here
    until the init ends."""
    give_up = time.monotonic() + GIVE_UP_S
    while not select.select([init.fd], [], [], LINGER_S)[0]:
        if time.monotonic() > give_up:
            log.error("the sandbox's init (pid %d) outlived every kill for %.0f s; left running", init.pid, GIVE_UP_S)
            return
        inside = _namespace(init)
        for pid in inside:
            with contextlib.suppress(OSError):
                fd = os.pidfd_open(pid)
                try:  # the pidfd pins a process: checked again, it is the one found, or that one is gone already
                    if (init.ns is not None and _ns(pid) == init.ns) or _parent(pid) in inside:
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)


def _namespace(init: _Init) -> set[int]:
    """The host pids of every process in the init's pid namespace (the same /proc/PID/ns/pid) and descended from one
    (a nested namespace's processes, which the kernel too would kill only after the init). Where the host may not
    read the namespace, the init's descendants."""
    inside, children = set() if init.ns is not None else {init.pid}, {}
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        children.setdefault(_parent(pid), []).append(pid)
        if init.ns is not None and _ns(pid) == init.ns:
            inside.add(pid)
    todo = list(inside)
    while todo:
        new = set(children.get(todo.pop(), [])) - inside
        inside |= new
        todo += new
    return inside


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _collect(proc: subprocess.Popen, bufs: dict[int, bytearray], until: float, cap: int) -> None:
    """Read stdout and stderr into `bufs` until both close, `until` passes, or together they hold more than `cap`."""
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and sum(map(len, bufs.values())) <= cap:
            left = until - time.monotonic()
            if left <= 0:
                return
            events = sel.select(min(left, 0.5))
            for key, _ in events:
                if chunk := os.read(key.fd, 1 << 16):
                    bufs[key.fd] += chunk
                else:
                    sel.unregister(key.fd)
            # without a pid namespace a child it left behind can hold the pipes open after it ended
            if not events and os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return
