"""The ``apssh`` executable: hand the call to a warm command server, else run it here.

When this user's command server (:mod:`apssh_cli.cli.command_server`, started by
an earlier ``--persist`` run and alive while its holder is) listens for this very
interpreter, apssh and HOME, this module passes it the call: argv, environment,
working directory, umask, resource limits, scheduling priority and the stdin, stdout
and stderr descriptors. The server's
child runs the call as ``apssh`` would here, writing straight to our descriptors;
we forward the signals we get (Ctrl-Z stops the run, then us; ``fg`` and ``bg``
continue both) and exit with its status. Anything short of a
started run (no server, a stale one, a refusal) runs the call in this process, as
if no server existed: the server only ever saves time.

This module imports nothing but the standard library and two small apssh modules,
so a served call costs a Python start-up and a fork, not the imports of asyncssh,
asynciojobs and click. ``APSSH_SERVER=0`` in the environment runs every call here.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import zlib
from contextlib import suppress

import apssh_cli
from apssh_cli.ssh.control import (
    ProtocolError,
    control_dir_name,
    encode_frame,
    listening,
    mark_started,
    recv_frame,
    same_user,
    socket_path,
    start_holder,
)

TYPE_CHECKING = False  # not typing's: see apssh_cli/__init__.py
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
START_TIMEOUT = 5.0  # a server that takes longer to say "started" is not used
# whether this process was started by main() (not a test), and started a server
LAUNCHED = {"here": False, "spawned": False}


def main() -> None:
    argv = sys.argv[1:]
    status = served(argv) if os.environ.get("APSSH_SERVER", "1") != "0" else None
    if status is not None:
        sys.exit(status)
    LAUNCHED["here"] = True
    idle = persist_asked(argv, os.environ)
    if idle:
        # the holder and the command server start while this process imports
        # (~0.3 s): the first call of a script waits less, the next ones are served
        ensure_started(holder_idle=idle)
    from apssh_cli.cli.main import main as run_here

    run_here()


def ensure_started(holder_idle: float | None = None) -> None:
    """Start this user's command server in the background if none listens; with
    ``holder_idle``, the holder too if none listens.

    One process starts both: it imports what the holder needs, forks the holder,
    then imports the rest and serves (one import of asyncssh, not two, beside the
    first call's own). Called by a ``--persist`` run that went through the
    launcher: the next calls of the same script are served warm. Errors only cost
    the speed-up.
    """
    import subprocess  # here: not needed by a served call

    if LAUNCHED["spawned"]:
        return  # this process started one already (it may not listen yet)
    try:
        path = server_path()
        holder = socket_path() if holder_idle else None
        if holder is not None and listening(holder):
            holder = None
        if listening(path):
            if holder is not None and holder_idle:
                start_holder(holder, holder_idle)
            return
        argv = [sys.executable, "-m", "apssh_cli.cli.command_server", str(path)]
        if holder is not None:
            argv += [str(holder), f"{holder_idle:g}"]
        log = os.open(path.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
        finally:
            os.close(log)
        LAUNCHED["spawned"] = True
        if holder is not None:
            mark_started(holder)  # this run's nodes wait for it, rather than start another
    except OSError:
        pass


def persist_asked(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> float:
    """The ``--persist`` duration the command line or ``APSSH_PERSIST`` asks for
    (0: none, or not said there: the config file and the inventory are read later).
    A ``--persist`` word inside the remote command only starts a holder for nothing."""
    from apssh_cli.durations import parse_duration

    given = environ.get("APSSH_PERSIST")
    for index, word in enumerate(argv):
        if word == "--":
            break
        if word == "--persist" and index + 1 < len(argv):
            given = argv[index + 1]
        elif word.startswith("--persist="):
            given = word.partition("=")[2]
    if not given:
        return 0.0
    try:
        return parse_duration(given, allow_zero=True)
    except ValueError:
        return 0.0  # said again, with the file and line, by the command line


def served(argv: list[str]) -> int | None:
    """Run the call in the command server; its exit status, or None: not served
    (then nothing ran)."""
    try:
        path = server_name()
        request = _request(argv)
    except (OSError, ValueError):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(START_TIMEOUT)
        try:
            sock.connect(str(path))
        except OSError:
            return None
        return _delegate(sock, request)
    finally:
        sock.close()


def code_tag(environ: dict[str, str] | os._Environ[str]) -> str:
    """A digest of what the server's code and the caller's must share (64 bits of
    CRC: it tells apart versions of one user's install, it is no security boundary;
    zlib, not hashlib: the launcher saves OpenSSL's ~3 ms load)."""
    parts = [sys.executable, environ.get("HOME", ""), sys.version]
    package = os.path.dirname(apssh_cli.__file__)
    for directory, subdirectories, files in os.walk(package):
        subdirectories.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                info = os.stat(os.path.join(directory, name))
                parts.append(f"{directory}/{name}:{info.st_size}:{info.st_mtime_ns}")
    # an installed or removed dependency changes its site directory
    for entry in sys.path:
        if entry.endswith("-packages"):
            with suppress(OSError):
                parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
    data = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def server_name(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """Where the command server of this interpreter, apssh and HOME listens."""
    environ = os.environ if environ is None else environ
    return os.path.join(control_dir_name(environ), f"command-{code_tag(environ)}.sock")


def server_path(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """:func:`server_name` as a Path."""
    from pathlib import Path

    return Path(server_name(environ))


def _request(argv: list[str]) -> dict[str, Any]:
    for fd in range(3):
        os.fstat(fd)  # raises on a closed descriptor: not served
    umask = os.umask(0o022)
    os.umask(umask)
    streams = [
        {
            "encoding": getattr(stream, "encoding", None),
            "errors": getattr(stream, "errors", None),
            "line_buffering": getattr(stream, "line_buffering", False),
        }
        for stream in (sys.stdin, sys.stdout, sys.stderr)
    ]
    return {
        "argv": [sys.argv[0], *argv],
        "cwd": os.getcwd(),
        "umask": umask,
        "rlimits": process_limits(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "env": dict(os.environ),
        "streams": streams,
    }


def process_limits() -> dict[str, list[int]]:
    """This process's resource limits (``ulimit``), by name: ``{"RLIMIT_NOFILE": [soft, hard]}``."""
    names = sorted(name for name in dir(resource) if name.startswith("RLIMIT_"))
    return {name: list(resource.getrlimit(getattr(resource, name))) for name in names}


def _delegate(sock: socket.socket, request: dict[str, Any]) -> int | None:
    if not same_user(sock):
        return None
    try:
        socket.send_fds(sock, [encode_frame(request)], [0, 1, 2])
        answer = _read(sock)
    except OSError:
        return None
    pid = answer.get("started") if answer else None
    if not isinstance(pid, int):
        return None  # refused, gone or too slow before starting: nothing ran
    try:
        sock.sendall(encode_frame({"go": True}))  # from here on, the run is the child's
    except OSError:
        return None  # it cannot have started without this
    sock.settimeout(None)
    target = _Target(pid)
    previous = {signum: signal.signal(signum, target.forward) for signum in FORWARDED}
    previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, target.suspend)
    previous[signal.SIGCONT] = signal.signal(signal.SIGCONT, target.resume)
    try:
        while True:
            try:
                answer = _read(sock)
            except OSError:
                answer = None
            if answer is None:
                sys.stderr.write("apssh: the command server lost the run's exit status\n")
                return 1
            if "exit" in answer:
                return int(answer["exit"])
            if "signal" in answer:  # the run died of a signal: so do we
                signum = int(answer["signal"])
                for restored, handler in previous.items():
                    signal.signal(restored, handler)
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return 128 + signum
    finally:
        target.close()


class _Target:
    """The child running our call, signalled through a pidfd where there is one."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd: int | None = None
        # a pidfd names this process even after it ends; before Linux 5.3, its pid
        with suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)

    def forward(self, signum: int, _frame: object) -> None:
        with suppress(OSError):  # OSError: it has just ended, its status is on the way
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            else:
                os.kill(self.pid, signum)

    def suspend(self, _signum: int, frame: object) -> None:
        """Ctrl-Z: the run stops, then this process, as a run of our own would."""
        # SIGSTOP, not SIGTSTP: the child's process group (the server's) is orphaned,
        # and the kernel discards a SIGTSTP sent there
        self.forward(signal.SIGSTOP, frame)
        # SIGSTOP here too: a SIGTSTP would be discarded if our own group were orphaned;
        # `fg` or `bg` continues us, and `resume` (the SIGCONT handler) the child
        os.kill(os.getpid(), signal.SIGSTOP)

    def resume(self, _signum: int, frame: object) -> None:
        self.forward(signal.SIGCONT, frame)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _read(sock: socket.socket) -> dict[str, Any] | None:
    """One frame, or None at the end of the stream."""
    try:
        return recv_frame(sock, "command server")
    except ProtocolError:
        return None
