"""A warm ``apssh`` for shell scripts: the command server of ``--persist``.

A script of 20 ``apssh`` calls pays 20 Python start-ups and 20 imports of asyncssh
and asynciojobs (about 0.3 s each on the machines of docs/benchmarks.md) even when
the holder keeps every SSH connection warm. The command server removes that cost
as Mercurial's ``chg`` does for ``hg``: a process that has imported apssh once
waits on a unix socket; each ``apssh`` (:mod:`apssh_cli.cli.launch`, which imports
nothing heavy) hands it its argv, environment, working directory, umask, resource
limits, scheduling priority and its stdin, stdout and stderr *descriptors*
(``SCM_RIGHTS``); the server forks a child
that takes them on and runs the ordinary command line in them. The child is the
run: it writes to the caller's terminal or pipes, reads its stdin, connects through
the holder as any ``--persist`` run does, and its exit status becomes the caller's.

Why it is shaped so:

- The child is ``apssh`` itself, not a re-implementation: output, exit statuses,
  signals and summaries are those of a direct run by construction. The caller
  forwards the signals it gets (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT; Ctrl-Z as SIGSTOP,
  then SIGCONT) to the child through a pidfd (no pid-reuse race); a caller that
  dies (SIGKILL, a closed terminal) is noticed by the child (its socket ends) which
  then stops as on SIGHUP, and is killed 10 s later if still there: no remote process is left.
- A server serves one interpreter, one installed apssh and one HOME: its socket's
  name carries a digest of the interpreter, of every module of the package (path,
  size, mtime) and of the site directories, so an upgraded or edited apssh is
  never served by an old server (:func:`server_path`).
- It is started by a ``--persist`` run (:func:`ensure_started`) and lives while
  this user's holder lives (it checks the holder's lock every second), so it exists
  only where the user asked for warm connections. The socket is 0600 in the
  holder's private directory and a peer of another uid is refused (``SO_PEERCRED``).
- Each child starts from the state the server had after its imports: the server
  never runs a command itself, so no run's state leaks into the next one.

A child that cannot take on the caller's limits or priority (a caller allowed more
than the server: a higher hard limit, a lower nice value) refuses the call, which
the caller then runs itself. Not carried to the child: the caller's cgroup and
controlling terminal (the passphrase prompt of an encrypted key reads
the caller's terminal through stdin: :mod:`apssh_cli.ssh.keyload`).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import gc
import io
import locale
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from apssh_cli.ssh.control import (
    FD_SIZE,
    HEADER_SIZE,
    ProtocolError,
    decode_frame,
    encode_frame,
    frame_length,
    received_fds,
    recv_frame,
    same_user,
    socket_path,
    trim_log,
)

CHECK_PERIOD = 1.0
HOLDER_GRACE = 10.0  # a server whose holder is gone this long exits
REQUEST_TIMEOUT = 5.0  # a caller that sends no whole request this long is dropped
KILL_GRACE = 10.0  # a child whose caller died and that did not stop on SIGHUP
STREAMS = 3  # stdin, stdout, stderr
# the modules a run needs: imported once by the server, before any fork
PRELOAD = (
    "apssh_cli.cli.main",
    "apssh_cli.cli.run_cmd",
    "apssh_cli.cli.transfer_cmd",
    "apssh_cli.cli.recipe_cmd",
    "apssh_cli.engine.fleet",
    "apssh_cli.ssh.holder_client",
    "apssh_cli.ssh.sftp",
)


def holder_lock(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """The lock file the holder keeps while it runs (its socket's ``.lock``)."""
    return socket_path(environ).with_suffix(".lock")


def recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request frame and the descriptors that came with it.

    Raises:
        ProtocolError: cut short, too long, not JSON, or not three descriptors.
    """
    fds: list[int] = []
    data = b""
    need = HEADER_SIZE
    while len(data) < need:
        chunk, ancillary, _flags, _address = conn.recvmsg(
            need - len(data), socket.CMSG_LEN(STREAMS * FD_SIZE)
        )
        fds.extend(received_fds(ancillary))
        if not chunk:
            break
        data += chunk
        if len(data) == HEADER_SIZE and need == HEADER_SIZE:
            need += frame_length(data)
    if len(data) < need or len(fds) != STREAMS:
        for fd in fds:
            os.close(fd)
        raise ProtocolError("the caller sent no whole request")
    return decode_frame(data[HEADER_SIZE:]), fds


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    with suppress(OSError):
        conn.sendall(encode_frame(message))


class Server:
    """The loop of one command server: accept, fork, reap."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self.lock_fd = lock_fd  # held while we serve: one server per socket
        self.lock = holder_lock()
        self.children: dict[int, socket.socket] = {}
        self.selector = selectors.DefaultSelector()
        self.wakeup_read, self.wakeup_write = os.pipe()
        self.holder_seen = time.monotonic()
        self.inode = -1
        self.stopping = False

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True  # the wakeup descriptor ends the select at once

    def listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        listener.listen(64)
        return listener

    def serve(self) -> None:
        """Serve until the holder is gone; return in the server, never in a child."""
        # looked at before the socket exists: a holder that ends as soon as a caller
        # sees the socket is then a holder gone, not one that never came (10 s more)
        seen = self.holder_alive()
        listener = self.listen()
        self.inode = os.stat(self.path).st_ino
        for fd in (self.wakeup_read, self.wakeup_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, self._stop)
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        gc.freeze()  # the imported modules stay shared with every child (no copy-on-write)
        while True:
            for key, _events in self.selector.select(CHECK_PERIOD):
                if key.fileobj is listener and not self.stopping:
                    self.accept(listener)
                else:
                    with suppress(BlockingIOError):
                        os.read(self.wakeup_read, 512)
            self.reap()
            if self.holder_alive():
                self.holder_seen = time.monotonic()
                seen = True
            elif seen or time.monotonic() - self.holder_seen > HOLDER_GRACE:
                break  # the holder is gone (or never came): so is the warm path
            if self.stopping or not self.still_ours(self.inode):
                break
        # no new caller; the running children's signal deaths are still reported
        self.selector.unregister(listener)
        listener.close()
        if self.still_ours(self.inode):
            self.path.unlink()
        while self.children:
            self.selector.select(CHECK_PERIOD)
            with suppress(BlockingIOError):
                os.read(self.wakeup_read, 512)
            self.reap()

    def still_ours(self, inode: int) -> bool:
        # the socket removed or replaced (a new server, XDG_RUNTIME_DIR gone at logout)
        try:
            return os.stat(self.path).st_ino == inode
        except OSError:
            return False

    def holder_alive(self) -> bool:
        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # the holder holds its lock
        finally:
            os.close(fd)
        return False

    def accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        if not same_user(conn):
            conn.close()
            return
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            request, fds = recv_request(conn)
        except (OSError, ProtocolError) as exc:
            print(f"command server: dropped a caller: {exc}", file=sys.stderr, flush=True)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self.selector.close()
            listener.close()
            for other in self.children.values():
                other.close()
            for fd in (self.wakeup_read, self.wakeup_write, self.lock_fd):
                os.close(fd)
            become_child(conn, request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        # not the argv: a command line may hold a secret
        print(f"command server: pid {pid}: a call served", file=sys.stderr, flush=True)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):  # a child that exits says its status itself
                send(conn, {"signal": os.WTERMSIG(status)})
            conn.close()


def become_child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Take on the caller's process state, run ``apssh`` in it, exit with its status."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)  # as in a new apssh process
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target, inheritable=True)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        _take_limits(request["rlimits"], int(request["nice"]))
        os.environ.clear()
        os.environ.update(request["env"])
        with suppress(locale.Error):  # the caller's LC_CTYPE, as Python sets it at start-up
            locale.setlocale(locale.LC_CTYPE, "")
        sys.argv = [str(arg) for arg in request["argv"]]
        _rebind_streams(request["streams"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        send(conn, {"refused": str(exc)})  # nothing ran: the caller runs apssh itself
        os._exit(0)
    # the caller commits to this run only when it reads "started" in time, and says
    # "go": a caller that gave up before (a stopped or slow server) has run the call
    # itself, and this child must not run it again
    send(conn, {"started": os.getpid()})
    conn.settimeout(REQUEST_TIMEOUT)
    try:
        go = recv_frame(conn, "caller")
    except (OSError, ProtocolError):
        go = {}
    if not go.get("go"):
        os._exit(0)
    conn.settimeout(None)
    status = {"code": 1}
    reported = threading.Event()

    def report() -> None:  # registered first, so it runs after every other exit handler
        for stream in (sys.stdout, sys.stderr):
            with suppress(Exception):
                stream.flush()
        reported.set()
        send(conn, {"exit": status["code"]})

    atexit.register(report)
    threading.Thread(target=_watch_caller, args=(conn, reported), daemon=True).start()
    from apssh_cli.cli.main import main

    try:
        main()
    except SystemExit as exc:
        status["code"] = _exit_code(exc.code)
        raise
    status["code"] = 0
    sys.exit(0)


def _take_limits(rlimits: dict[str, list[int]], nice: int) -> None:
    """The caller's resource limits and nice value, or OSError/ValueError if not allowed."""
    for name, (soft, hard) in rlimits.items():
        which = getattr(resource, name, None)
        if which is not None and resource.getrlimit(which) != (soft, hard):
            resource.setrlimit(which, (soft, hard))  # above our hard limit: refused
    if os.getpriority(os.PRIO_PROCESS, 0) != nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # a lower nice value: refused unless root


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1  # sys.exit("message") prints the message and exits 1


def _watch_caller(conn: socket.socket, reported: threading.Event) -> None:
    """The caller died (its end of the socket closed): stop as on SIGHUP, then kill."""
    with suppress(OSError):
        while conn.recv(64):
            pass
    if reported.is_set():
        return  # the caller left after reading our status: nothing to stop
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(KILL_GRACE)
    os.kill(os.getpid(), signal.SIGKILL)


def _rebind_streams(streams: list[dict[str, Any]]) -> None:
    """sys.stdin/stdout/stderr as the caller's interpreter made them (encoding,
    errors, line buffering), on the descriptors it passed."""
    made = []
    for fd, spec in enumerate(streams[:STREAMS]):
        mode = "rb" if fd == 0 else "wb"
        raw = open(fd, mode, buffering=-1, closefd=False)  # noqa: SIM115
        made.append(
            io.TextIOWrapper(
                raw,
                encoding=spec.get("encoding") or "utf-8",
                errors=spec.get("errors") or "strict",
                line_buffering=bool(spec.get("line_buffering")),
                write_through=fd == 2,
            )
        )
    sys.stdin, sys.stdout, sys.stderr = made
    # the originals too: faulthandler and a last-resort traceback write there
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc]


def main(argv: list[str]) -> int:
    """``SOCKET [HOLDER_SOCKET IDLE]``: serve; with a holder's socket, fork the
    holder first (after the imports it needs: they are shared, not made twice)."""
    if len(argv) not in (1, 3):
        print(
            "usage: python -m apssh_cli.cli.command_server SOCKET [HOLDER_SOCKET IDLE]",
            file=sys.stderr,
        )
        return 2
    path = Path(argv[0])
    trim_log(path.with_suffix(".log"))
    if len(argv) == 3:
        start_holder(Path(argv[1]), argv[2])
    lock_fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return 0  # another server runs for this socket
        raise
    from importlib import import_module

    for name in PRELOAD:
        import_module(name)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    Server(path, lock_fd).serve()  # a child never returns from it: it exits with its run's status
    return 0


def start_holder(holder: Path, idle: str) -> None:
    """Fork the holder of ``holder`` (its own log, as when started alone)."""
    from apssh_cli.ssh import holder_server

    if os.fork() != 0:
        return
    try:
        log = os.open(holder.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for fd in (1, 2):
            os.dup2(log, fd)
        os.close(log)
        status = holder_server.main([str(holder), idle])
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
