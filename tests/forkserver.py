"""A warm interpreter that forks the command line's subprocesses: ``python -m orchestrator`` without the
second of imports each one pays (click, the API, pyarrow, httpx, boto3), for tests that need a real
process (kill -9, signals, two runs at once).

The server (this module's ``__main__``) imports the command line's modules once, then for each request
forks a child that does what ``conftest._LAUNCH`` does (signal dispositions as a terminal gives them,
``runpy`` of the module) and ends as the interpreter would (non-daemon threads joined, ``atexit``
handlers run, the exit code of ``SystemExit``, death by SIGINT after an uncaught ``KeyboardInterrupt``).
The test process hands over the child's stdin, stdout, stderr and a status pipe (``SCM_RIGHTS``); the
server reaps the child and writes its wait status there. :class:`Forked` is the test side: the part of
``subprocess.Popen`` that ``conftest.Child`` uses.

Only children whose interpreter would start the same way are forked: the same ``PYTHON*``, locale and
``PATH`` variables as the server's; any other is started by ``subprocess.Popen`` as before
(:func:`can_fork`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import locale
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ("orchestrator.cli.main", "orchestrator.sources.s3")  # what every `run` over S3 imports
_STARTUP_ENV = ("PYTHON", "LC_", "LANG", "PATH")  # variables read when an interpreter starts


def startup_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_ENV)}


# -- the server ----------------------------------------------------------------------------------

def _stdio(fd: int, model: IO[str], *, writing: bool) -> IO[str]:
    """A text stream on ``fd`` built as the interpreter built ``model``, the server's own stream (the
    server started with the same ``PYTHON*`` and locale variables): the same encoding and error
    handler, unbuffered under ``PYTHONUNBUFFERED``, line-buffered on a terminal and for stderr."""
    unbuffered = bool(getattr(model, "write_through", False))
    binary = open(fd, "wb" if writing else "rb", buffering=0 if unbuffered and writing else -1,  # noqa: SIM115
                  closefd=False)  # it lives on as sys.stdin/stdout/stderr
    return io.TextIOWrapper(binary, encoding=model.encoding, errors=model.errors, newline="\n",
                            line_buffering=writing and not unbuffered and (os.isatty(fd) or fd == 2),
                            write_through=unbuffered)


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` and end as the interpreter would."""
    for fd, target in zip(fds[:3], (0, 1, 2), strict=True):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN if request["hup"] == "ignore" else signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    models = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    assert models[0] is not None and models[1] is not None and models[2] is not None
    sys.stdin = sys.__stdin__ = _stdio(0, models[0], writing=False)
    sys.stdout = sys.__stdout__ = _stdio(1, models[1], writing=True)
    sys.stderr = sys.__stderr__ = _stdio(2, models[2], writing=True)
    sys.argv = ["-c", *request["args"]]
    code, interrupted = 0, False
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:  # the interpreter prints any other exception and exits 1
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own shutdown steps
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the interpreter exits 120 when it cannot flush at exit
            code = 120
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


def serve(sock: socket.socket) -> None:
    """Fork a child per request until the test process hangs up; report each child's wait status."""
    sys.path.insert(0, str(ROOT))
    for module in PRELOAD:
        __import__(module)
    if threading.active_count() != 1:  # a thread started by an import would not survive a fork
        sock.sendall(b'{"refused": "threads"}\n')
        return
    sock.sendall(b'{"ready": true}\n')
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    status_of: dict[int, int] = {}  # pid -> its status pipe
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
        while status_of:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            fd = status_of.pop(pid)
            with contextlib.suppress(OSError):  # the test side gave up on this child (closed its pipe)
                os.write(fd, str(status).encode())
            os.close(fd)
        if sock in ready:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
            if not message:
                return
            pid = os.fork()
            if pid == 0:
                try:  # the child never returns into this loop, whatever happens before it runs
                    signal.set_wakeup_fd(-1)
                    for fd in (sock.detach(), wake_r, wake_w, *status_of.values()):
                        os.close(fd)
                    _child(json.loads(message), fds)
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(70)  # EX_SOFTWARE: the child could not become the command
            for fd in fds[:3]:
                os.close(fd)
            status_of[pid] = fds[3]
            sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")


# -- the test side -------------------------------------------------------------------------------

class Server:
    """The fork server of this test process, started on first use."""

    _lock = threading.Lock()
    _started: Server | None = None

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # a request per message
        self.env = startup_env(dict(os.environ))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.forkserver", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), cwd=ROOT, stdin=subprocess.DEVNULL)
        theirs.close()
        mine.settimeout(120)  # a server that stops answering fails the test that waits on it, never hangs
        self.sock = mine
        self.replies = mine.makefile("rb")
        try:
            self.ready = json.loads(self.replies.readline() or b"{}").get("ready", False)
        except TimeoutError:  # its imports hang: every child starts with Popen instead
            self.ready = False

    @classmethod
    def get(cls) -> Server:
        with cls._lock:
            if cls._started is None:
                cls._started = cls()
            return cls._started

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        with self._lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
            return int(json.loads(self.replies.readline())["pid"])


def can_fork(module: str, popen: dict[str, Any]) -> bool:
    """Whether the child may come from the fork server: the command line, with only the arguments
    :class:`Forked` takes, and an environment an interpreter would start the same way in."""
    if module != "orchestrator" or not set(popen) <= {"env", "cwd", "stdout", "stderr"}:
        return False
    if any(popen.get(k) in (subprocess.STDOUT, subprocess.DEVNULL) for k in ("stdout", "stderr")):
        return False
    env = popen["env"] if popen.get("env") is not None else dict(os.environ)
    server = Server.get()
    return server.ready and startup_env(env) == server.env


class Forked:
    """A forked child, seen as the part of ``subprocess.Popen`` (text mode) the tests use."""

    def __init__(self, module: str, args: list[str], hup: str, *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, stdout: Any = subprocess.PIPE,
                 stderr: Any = subprocess.PIPE) -> None:
        self.args = args
        self.returncode: int | None = None
        self._read: dict[int, list[bytes]] = {}  # what communicate() read from each pipe, by its fd
        handed: list[int] = []  # the child's ends, closed here once handed over
        ends = []
        for given, default in ((None, 0), (stdout, 1), (stderr, 2)):
            if given == subprocess.PIPE:
                r, w = os.pipe()
                self._read[r] = []
                ends.append(w)
                handed.append(w)
            else:
                ends.append(default if given is None else given if isinstance(given, int) else given.fileno())
        self._status, status_w = os.pipe()
        self._reading = threading.Lock()
        weakref.finalize(self, os.close, self._status)  # closed with this object: another thread may poll
        handed.append(status_w)
        encoding = locale.getpreferredencoding(False)
        pipes = iter(self._read)
        self.stdout = open(next(pipes), encoding=encoding) if stdout == subprocess.PIPE else None  # noqa: SIM115
        self.stderr = open(next(pipes), encoding=encoding) if stderr == subprocess.PIPE else None  # noqa: SIM115
        self._fds = {id(s): s.fileno() for s in (self.stdout, self.stderr) if s is not None}
        request = {"module": module, "args": args, "hup": hup, "cwd": str(cwd or os.getcwd()),
                   "env": dict(os.environ if env is None else env)}
        try:
            self.pid = Server.get().fork(request, [*ends, status_w])
        finally:
            for fd in handed:
                os.close(fd)

    def poll(self) -> int | None:
        self._settle(0.0)
        return self.returncode

    def _settle(self, timeout: float | None) -> bool:
        """Read the exit status once the server wrote it (waiting up to ``timeout``): whether it is
        known. Threads may ask at once (a timer that kills, a test that waits): one reads it."""
        if self.returncode is None and select.select([self._status], [], [], timeout)[0]:
            with self._reading:
                if self.returncode is None:
                    self.returncode = os.waitstatus_to_exitcode(int(os.read(self._status, 64)))
        return self.returncode is not None

    def wait(self, timeout: float | None = None) -> int:
        if not self._settle(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Both outputs to their end and the exit status, within ``timeout`` (then
        ``subprocess.TimeoutExpired``; what was read so far is kept for the next call)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        streams = {s.fileno(): s for s in (self.stdout, self.stderr) if s is not None and not s.closed}
        while streams or self.returncode is None:
            wanted = [*streams, *([self._status] if self.returncode is None else [])]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = select.select(wanted, [], [], left)[0]
            if not ready:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            for fd in ready:
                if fd == self._status:
                    self._settle(0.0)
                    continue
                data = os.read(fd, 65536)
                if data:
                    self._read[fd].append(data)
                else:
                    streams.pop(fd).close()
        return self._text(self.stdout), self._text(self.stderr)

    def _text(self, stream: IO[str] | None) -> str:
        """What was read from ``stream``, decoded with universal newlines (as ``Popen(text=True)``)."""
        if stream is None:
            return ""
        text = b"".join(self._read[self._fds[id(stream)]]).decode(locale.getpreferredencoding(False))
        return text.replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
