"""SFTP transfers for Push and Pull: pipelined, binary-safe, never a truncated file under its name.

Every file is written under a temporary name next to its target (on the node for
a push, locally for a pull) and renamed when complete. Each file moves in blocks
of up to :data:`BLOCK_SIZE` with up to :data:`MAX_REQUESTS` requests in flight,
so a transfer is not bound by the round trip time. Every request is awaited or
its error consumed, so a failure leaves no "Task exception was never retrieved".

A pushed file of :data:`SPREAD_THRESHOLD` or more is spread over :data:`SESSIONS`
SFTP sessions of the node's one connection: OpenSSH's sshd gives each session a
2 MiB window, so one session carries at most about 2 MiB per round trip (40 MiB/s
at 50 ms), whatever the requests in flight. The extra sessions are opened once,
when the first large file comes, and closed when the push ends; a server that
refuses them (``MaxSessions``) gets the file over the sessions it accepted. A pull
needs none: the window there is ours (:data:`~apssh_cli.ssh.connection.CHANNEL_WINDOW`).

Errors: a connection lost in the middle is an
:class:`~apssh_cli.errors.UnreachableError` (the host, like a lost command); a
full filesystem on the node, a missing file, a refused path are a
:class:`TransferError`, which the commands report as a failed transfer (rc 1).

A pushed file is checked on the node before it gets its name: its size there must
be the bytes written (a server may acknowledge writes it did not make). So a push
never leaves an empty or short file under its name: asyncssh's own ``put`` with
blocks larger than OpenSSH's sftp-server accepts leaves an empty one
(tests/integration/test_transfer_limits.py).

A pulled file gets the remote file's mode bits, less the local umask, as sftp and
scp do (a 0600 file stays private); with ``preserve``, all of them and the times.

Only regular files are read, both ways: a FIFO would block the node's sftp-server
in open(2) for good, a device such as ``/dev/zero`` never ends. Met in a tree, such
a file is skipped with one line (``warn``: the command writes it to the host's
stderr); named by the caller, it fails the transfer. Trees are walked from a
stack, not by recursion: depth is no limit.

A recursive pull copies what the node lists in a directory, each name checked:
a name with a ``/``, ``.`` or ``..`` is refused, so nothing is written outside
the destination. Names are bytes, copied as they are (newlines, escapes, bytes
that are not UTF-8); a line that quotes one escapes it (:func:`shown`). A
symbolic link to a file is copied as a file (its content); a symbolic link to a
directory is not followed (it could lead anywhere, even back into the tree): it
is skipped, with one line.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import secrets
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import asyncssh

from apssh_cli.errors import UnreachableError
from apssh_cli.log import host_logger
from apssh_cli.output import escape_text
from apssh_cli.ssh.process import shielded_cleanup

# one request's payload, at most; never more than the server announces (OpenSSH's
# sftp-server: 255 KiB; a 256 KiB write is more than it reads, and it ends the session),
# asyncssh's safe 16 KiB from a server that announces nothing
BLOCK_SIZE = 256 * 1024
# requests in flight per file: 64 x 255 KiB covers a 1 Gbit/s path at 50 ms RTT
MAX_REQUESTS = 64
# SFTP sessions a large file is spread over: 4 windows of OpenSSH's 2 MiB
# (measured, 64 MiB pushed at 50 ms RTT: 1.98 s over one session, 1.07 s over four)
SESSIONS = 4
# below this, the round trips of opening more sessions cost more than they gain
SPREAD_THRESHOLD = 8 * 1024 * 1024

Warn = Callable[[str], None]
"""Where a transfer says what it skipped (one line each)."""

SessionOpener = Callable[[], Awaitable[asyncssh.SFTPClient]]
"""Opens one more SFTP session on the node's connection (the caller closes it)."""


class TransferError(Exception):
    """A Push or Pull could not complete (reported as a failed transfer, rc 1)."""


class SessionLostError(UnreachableError):
    """The SFTP session ended under a transfer: a lost connection, or only the
    session (the server's sftp-server exited); the node tells which
    (:meth:`~apssh_cli.ssh.node.SshNode.sftp_session_ended`)."""


_SESSION_LOST = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    *_SESSION_LOST,
    asyncssh.ChannelOpenError,
    ConnectionError,  # BrokenPipeError, ConnectionResetError...
)


@contextmanager
def _transfer_errors(host: str) -> Iterator[None]:
    try:
        yield
    except _SESSION_LOST as exc:
        raise SessionLostError(host, "connection lost during the transfer") from exc
    except _LOST as exc:
        raise UnreachableError(host, "connection lost during the transfer") from exc
    except asyncssh.SFTPError as exc:
        raise TransferError(exc.reason or type(exc).__name__) from exc
    except asyncssh.Error as exc:  # the session itself failed
        raise UnreachableError(host, f"transfer failed: {exc.reason}") from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise TransferError(f"{where}{exc.strerror or exc}") from exc


async def push(
    sftp: asyncssh.SFTPClient,
    localpaths: Sequence[Path],
    remotepath: str,
    *,
    recurse: bool = False,
    preserve: bool = False,
    host: str = "",
    more_sessions: SessionOpener | None = None,
    sessions: int = SESSIONS,
    warn: Warn | None = None,
) -> None:
    """Copy local files (or trees) to ``remotepath``; several need a remote directory.

    ``more_sessions`` opens the extra sessions a large file is spread over, up to
    ``sessions`` in all; without it, every file goes over ``sftp`` alone.

    Each file's size on the node is checked before it gets its name: a server that
    acknowledged writes it did not make fails the push. Only regular files are read:
    a FIFO, a socket, a device or a link to a directory met in a tree is skipped,
    with one line to ``warn`` (the host's log by default); one named in
    ``localpaths`` fails the transfer.

    Raises:
        TransferError: a missing source, a directory without ``recurse``, a special
            file, an SFTP error (a full filesystem is said as such), a size on the
            node that is not the size written.
        UnreachableError: the connection was lost.
    """
    warn = warn or _log_warning(host)
    with _transfer_errors(host):
        into_dir = await sftp.isdir(remotepath)
        if len(localpaths) > 1 and not into_dir:
            raise TransferError(f"{shown(remotepath)}: not a directory on the node")
        async with _Sessions(sftp, more_sessions, sessions, host) as spread:
            for local in localpaths:
                target = posixpath.join(remotepath, local.name) if into_dir else remotepath
                if local.is_dir():
                    if not recurse:
                        raise TransferError(f"{shown(str(local))}: is a directory (use recurse)")
                    await _push_tree(spread, local, target, preserve, warn)
                elif local.is_file():
                    await _push_file(spread, local, target, preserve)
                elif local.exists():
                    kind = _local_kind(local.stat().st_mode)
                    raise TransferError(f"{shown(str(local))}: {kind}, not a regular file")
                else:
                    raise TransferError(f"{shown(str(local))}: no such file")


async def pull(
    sftp: asyncssh.SFTPClient,
    remotepaths: Sequence[str],
    localpath: str | Path,
    *,
    recurse: bool = False,
    preserve: bool = False,
    host: str = "",
    warn: Warn | None = None,
) -> None:
    """Copy files (or trees) from the node to ``localpath``, creating missing local directories.

    ``localpath`` is a directory to copy into when it is one already, when its
    name ends with ``/``, or when there are several remote paths; otherwise it
    names the copy. A copy gets the remote file's mode bits, less the umask (all of
    them, and the times, with ``preserve``).

    Only regular files are read: a FIFO, a socket or a device met in a tree is
    skipped, with one line to ``warn`` (the host's log by default); one named in
    ``remotepaths`` fails the transfer once the others are copied.

    Raises:
        TransferError: a missing source, a directory without ``recurse``, a
            local path that is not a directory where one is needed, an SFTP error,
            a name in a remote directory that would lead outside the destination,
            two remote paths of one name, a special file named in ``remotepaths``.
        UnreachableError: the connection was lost.
    """
    warn = warn or _log_warning(host)
    with _transfer_errors(host):
        wants_dir = len(remotepaths) > 1 or str(localpath).endswith(("/", os.sep))
        localpath = Path(localpath)
        # str paths are sent as the bytes they came from (a name that is not UTF-8 works)
        sources = [os.fsencode(remote) for remote in remotepaths]
        names = [posixpath.basename(remote.rstrip(b"/")) or remote for remote in sources]
        if wants_dir and len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise TransferError(f"two remote paths would be copied to {shown(twice)}")
        if wants_dir and not localpath.is_dir():
            if localpath.exists():
                raise TransferError(f"{localpath}: not a local directory")
            localpath.mkdir(parents=True)
        into_dir = localpath.is_dir()
        refused = []
        for remote, name in zip(sources, names, strict=True):
            target = localpath / _safe_name(os.fsdecode(name)) if into_dir else localpath
            if (why := await _pull_one(sftp, remote, target, recurse, preserve, warn)) is not None:
                refused.append(why)
        if refused:
            raise TransferError("; ".join(refused))


def _log_warning(host: str) -> Warn:
    log = host_logger(host)
    return lambda message: log.warning("%s", message)


def _safe_name(name: str) -> str:
    """A name from the node, as one local path component; refuse anything else."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or os.sep in name:
        raise TransferError(f"refusing the remote name '{shown(name)}': not a plain file name")
    return name


def shown(name: str | bytes) -> str:
    """A file name or path as a line may quote it: nothing in it can drive a terminal.

    Names are data (the node's, the user's): escaped as remote output is
    (:func:`apssh_cli.output.escape_text`); bytes that are not UTF-8 as ``\\xHH``.
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    return escape_text(name)


# ------------------------------------------------------------------ pipelining


async def _pipeline(requests: Iterator[Awaitable[Any]], depth: int = MAX_REQUESTS) -> None:
    """Await the requests with up to ``depth`` in flight; stop at the first error.

    Every request is awaited, also after an error, and every error consumed.
    """
    pending: set[asyncio.Future[Any]] = set()
    try:
        while True:
            if len(pending) >= depth:  # room first: no request is made that is not awaited
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                _raise_first(done)
            request = next(requests, None)
            if request is None:
                break
            pending.add(asyncio.ensure_future(request))
        if pending:
            done, pending = await asyncio.wait(pending)
            _raise_first(done)
    finally:
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class _Sessions:
    """The SFTP sessions of one push: the node's own, and the extra ones a
    large file is spread over (opened once, on first need; closed on exit)."""

    def __init__(
        self, main: asyncssh.SFTPClient, opener: SessionOpener | None, count: int, host: str
    ) -> None:
        self.main = main
        self._opener = opener
        self._count = count  # sessions in all, the node's own included
        self._log = host_logger(host)
        self._extra: list[asyncssh.SFTPClient] | None = None  # None: not opened yet

    async def __aenter__(self) -> _Sessions:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._extra:
            # closed for good before the push ends: the channels are the server's to count
            # (MaxSessions), and a recipe gives their slots to other tasks then
            await shielded_cleanup(_close_sessions(self._extra))

    async def remove_quietly(self, path: str) -> None:
        """Remove ``path`` on the node, if it is there, whatever else failed.

        Through a session of its own when the push's own has ended: OpenSSH's
        sftp-server ends the session on a request it refuses (a block too large), and
        the temporary file it created must not stay behind.
        """
        try:
            await self.main.remove(path)
            return
        except _LOST:
            if self._opener is None:
                return
        except (asyncssh.Error, OSError):
            return  # no such file, or the node's own refusal: nothing more to do
        with suppress(asyncssh.Error, OSError, *_LOST):
            session = await self._opener()
            try:
                await _quiet_remove(session, path)
            finally:
                await _close_sessions([session])

    @asynccontextmanager
    async def create(
        self, path: str, size: int, attrs: asyncssh.SFTPAttrs, label: str
    ) -> AsyncIterator[_Spread]:
        """Create ``path`` for ``size`` bytes, open in every session it goes over.

        The node's session creates it (with ``attrs``), the others open it for writing;
        a session that cannot is left out. ``label``: the file's name in the log.
        """
        sessions = await self._for_size(size)
        create = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
        first = await _open_binary(sessions[0], path, create, attrs)
        async with first:
            results = await asyncio.gather(
                *(_open_binary(session, path, asyncssh.FXF_WRITE) for session in sessions[1:]),
                return_exceptions=True,
            )
            handles = [handle for handle in results if isinstance(handle, asyncssh.SFTPClientFile)]
            try:
                for failure in results:
                    if isinstance(failure, BaseException):
                        if not isinstance(failure, asyncssh.Error | OSError):
                            raise failure
                        self._log.info("%s: one SFTP session fewer: %s", label, failure)
                if handles:
                    self._log.info("%s: over %d SFTP sessions", label, 1 + len(handles))
                yield _Spread([first, *handles])
            except BaseException:
                await shielded_cleanup(_close_all(handles))
                raise
            # a close may report what a write could not (a network filesystem): as the
            # first handle's does, it fails the push
            await _close_all(handles, check=True)

    async def _for_size(self, size: int) -> list[asyncssh.SFTPClient]:
        if size < SPREAD_THRESHOLD or self._opener is None or self._count < 2:
            return [self.main]
        if self._extra is None:
            self._extra = await self._open_extra(self._count - 1)
        return [self.main, *self._extra]

    async def _open_extra(self, count: int) -> list[asyncssh.SFTPClient]:
        """Open up to ``count`` sessions at once; those the server refuses are done without."""
        if self._opener is None or count < 1:
            return []
        tasks = [asyncio.ensure_future(self._opener()) for _ in range(count)]
        try:
            await asyncio.wait(tasks)
        except BaseException:  # cancelled: close what opens, consume what fails
            for task in tasks:
                task.cancel()
                task.add_done_callback(_close_opened)
            raise
        opened = [task.result() for task in tasks if task.exception() is None]
        for task in tasks:
            if (exc := task.exception()) is None:
                continue
            if not isinstance(exc, asyncssh.Error | OSError):
                for session in opened:
                    session.exit()
                raise exc
            self._log.info("one SFTP session fewer: %s", exc)
        return opened


async def _open_binary(
    session: asyncssh.SFTPClient, path: str, pflags: int, attrs: asyncssh.SFTPAttrs | None = None
) -> asyncssh.SFTPClientFile:
    """``path`` opened for bytes (asyncssh decodes text unless told otherwise)."""
    # block_size=0: one request per call (asyncssh would make a task per block that a
    # cancellation leaves behind); the pipelining is _pipeline's
    return await session.open(
        path, pflags, attrs or asyncssh.SFTPAttrs(), encoding=None, block_size=0
    )


def _close_opened(task: asyncio.Future[asyncssh.SFTPClient]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().exit()


async def _close_sessions(sessions: Sequence[asyncssh.SFTPClient]) -> None:
    for session in sessions:
        session.exit()  # closes its channel; the node's sftp-server ends with it
    await asyncio.gather(*(session.wait_closed() for session in sessions))


async def _close_all(handles: Sequence[asyncssh.SFTPClientFile], check: bool = False) -> None:
    """Close every handle; with ``check``, raise the first error once all are closed."""
    results = await asyncio.gather(*(handle.close() for handle in handles), return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    if check and errors:
        raise errors[0]


class _Spread:
    """One file open in several sessions: each write goes to the handle with the
    fewest writes in flight."""

    def __init__(self, handles: Sequence[asyncssh.SFTPClientFile]) -> None:
        self._in_flight = dict.fromkeys(handles, 0)

    async def write(self, data: bytes, offset: int) -> int:
        handle = min(self._in_flight, key=self._in_flight.__getitem__)
        self._in_flight[handle] += 1
        try:
            return await handle.write(data, offset)
        finally:
            self._in_flight[handle] -= 1


def _raise_first(done: set[asyncio.Future[Any]]) -> None:
    errors = [exc for future in done if (exc := future.exception()) is not None]
    if errors:
        raise errors[0]


def _block_size(sftp: asyncssh.SFTPClient, write: bool) -> int:
    limit = sftp.limits.max_write_len if write else sftp.limits.max_read_len
    return min(BLOCK_SIZE, limit) if limit else BLOCK_SIZE


# ------------------------------------------------------------------ push


async def _push_tree(
    sessions: _Sessions, root: Path, target: str, preserve: bool, warn: Warn
) -> None:
    sftp = sessions.main
    await sftp.makedirs(target, exist_ok=True)
    for directory, files in walk_files(root, warn):
        relative = directory.relative_to(root)
        remote_dir = posixpath.join(target, *relative.parts) if relative.parts else target
        if relative.parts:
            # its parent is there already (top-down): one mkdir, where makedirs would
            # look at every level from the root (a deep tree: depth squared round trips)
            await _make_remote_dir(sftp, remote_dir)
        for name in files:
            await _push_file(sessions, directory / name, posixpath.join(remote_dir, name), preserve)
    if preserve:
        await sftp.setstat(target, _attrs(root.stat()))


async def _make_remote_dir(sftp: asyncssh.SFTPClient, path: str) -> None:
    try:
        await sftp.mkdir(path)
    except asyncssh.SFTPError:
        if not await sftp.isdir(path):  # not "it is there already" (v3 says only Failure)
            raise


def walk_files(root: Path, warn: Warn | None = None) -> Iterator[tuple[Path, list[str]]]:
    """Each directory of the tree at ``root`` (``root`` first) and its regular files, sorted.

    From a stack, not by recursion (``os.walk`` recurses in Python 3.11: a tree 1000
    deep ends in RecursionError). Links to directories are not followed; links to
    files are files. What is neither is skipped, with one line to ``warn``.
    """
    pending = [root]
    while pending:
        directory = pending.pop()
        files: list[str] = []
        subdirectories: list[str] = []
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirectories.append(entry.name)
                elif entry.is_file():
                    files.append(entry.name)
                elif warn is not None:
                    path = shown(entry.path)
                    if entry.is_dir():
                        warn(f"not following {path}: a link to a directory")
                    else:
                        warn(f"skipped {path}: {_local_kind(entry)}, not a file or a directory")
        yield directory, sorted(files)
        pending.extend(directory / name for name in sorted(subdirectories, reverse=True))


def _local_kind(entry: os.DirEntry[str] | int) -> str:
    try:
        mode = entry if isinstance(entry, int) else entry.stat().st_mode
    except OSError:
        return "a link to nothing"
    return _kind(asyncssh.SFTPAttrs(permissions=mode)) or "a regular file"


def _attrs(info: os.stat_result) -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(
        permissions=stat.S_IMODE(info.st_mode), atime=int(info.st_atime), mtime=int(info.st_mtime)
    )


# a file name's bytes, at most, on Linux and on the BSDs (NAME_MAX)
_NAME_MAX = 255


def _temp_name(name: str) -> str:
    """A new name next to ``name``, that a file system takes whenever it takes ``name``."""
    suffix = f".apssh-{secrets.token_hex(6)}"
    stem = name
    # cut a long name (never inside a character): the temporary name must fit too
    while len(os.fsencode(f".{stem}{suffix}")) > _NAME_MAX:
        stem = stem[:-1]
    return f".{stem}{suffix}"


async def _push_file(sessions: _Sessions, local: Path, target: str, preserve: bool) -> None:
    sftp = sessions.main
    directory, name = posixpath.split(target)
    temporary = posixpath.join(directory, _temp_name(name))
    info = local.stat()
    try:
        try:
            written = await _upload(sessions, local, temporary, info, label=shown(target))
        except asyncssh.SFTPFailure as exc:
            raise TransferError(await _why_failed(sftp, directory or ".", exc)) from exc
        # the server's word that each write was made is not enough (a server that
        # takes requests larger than it writes, a filesystem that loses data): the
        # file never gets its name unless it holds every byte
        size = (await sftp.stat(temporary)).size
        if size is not None and size != written:  # None: a server that keeps it to itself
            raise TransferError(
                f"{shown(target)}: the node has {size} bytes of the {written} written"
            )
        if preserve:
            await sftp.setstat(temporary, _attrs(info))
        try:
            await sftp.posix_rename(temporary, target)
        except asyncssh.SFTPOpUnsupported:
            # servers without the OpenSSH extension: rename refuses to overwrite
            if await sftp.exists(target):
                await sftp.remove(target)
            await sftp.rename(temporary, target)
    except BaseException:
        await shielded_cleanup(sessions.remove_quietly(temporary))
        raise


async def _upload(
    sessions: _Sessions, local: Path, remote: str, info: os.stat_result, label: str
) -> int:
    """Write ``local`` to ``remote``; the bytes written."""
    block = _block_size(sessions.main, write=True)
    # the new file gets the local file's permission bits (less the remote umask), as scp does
    attrs = asyncssh.SFTPAttrs(permissions=stat.S_IMODE(info.st_mode))
    async with sessions.create(remote, info.st_size, attrs, label) as file:
        with local.open("rb") as source:
            written = 0

            def writes() -> Iterator[Awaitable[int]]:
                nonlocal written
                while data := source.read(block):
                    yield file.write(data, written)
                    written += len(data)

            await _pipeline(writes())
    return written


async def _why_failed(sftp: asyncssh.SFTPClient, directory: str, exc: asyncssh.SFTPError) -> str:
    """OpenSSH says only "Failure" for a full disk: look at the free space."""
    with suppress(asyncssh.Error, OSError):
        space = await sftp.statvfs(directory)
        if space.bavail == 0 or space.favail == 0:
            return f"no space left on the node's filesystem ({directory})"
    return exc.reason or "failure"


async def _quiet_remove(sftp: asyncssh.SFTPClient, path: str) -> None:
    with suppress(asyncssh.Error, OSError):
        await sftp.remove(path)


# ------------------------------------------------------------------ pull


async def _pull_one(
    sftp: asyncssh.SFTPClient,
    remote: bytes,
    target: Path,
    recurse: bool,
    preserve: bool,
    warn: Warn,
) -> str | None:
    """Pull one remote path; what was refused (a special file), or None."""
    try:
        attrs = await sftp.stat(remote)
    except asyncssh.SFTPNoSuchFile as exc:
        raise TransferError(f"{shown(remote)}: no such file on the node") from exc
    kind = _kind(attrs)
    if kind == "a directory":
        if not recurse:
            raise TransferError(f"{shown(remote)}: is a directory (use recurse)")
        await _pull_tree(sftp, remote, target, attrs, preserve, warn)
    elif kind is None:
        await _pull_file(sftp, remote, target, attrs, preserve)
    else:
        return f"{shown(remote)}: {kind}, not a regular file"
    return None


def _kind(attrs: asyncssh.SFTPAttrs) -> str | None:
    """None for a regular file, else what it is ("a FIFO", "a directory"...)."""
    if attrs.permissions is None:  # a server that says nothing: asyncssh's guess
        kinds = {
            asyncssh.FILEXFER_TYPE_REGULAR: None,
            asyncssh.FILEXFER_TYPE_DIRECTORY: "a directory",
            asyncssh.FILEXFER_TYPE_SYMLINK: "a symbolic link",
        }
        return kinds.get(attrs.type, "a special file")
    mode = attrs.permissions
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"


_KINDS: tuple[tuple[Callable[[int], bool], str | None], ...] = (
    (stat.S_ISREG, None),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


async def _pull_file(
    sftp: asyncssh.SFTPClient,
    remote: bytes,
    target: Path,
    attrs: asyncssh.SFTPAttrs,
    preserve: bool,
) -> None:
    """Copy one regular file (``attrs``: its stat, links followed), under a temporary name
    first."""
    temporary = target.parent / _temp_name(target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        attrs = await _download(sftp, remote, temporary, attrs)
        if preserve:
            if attrs.permissions is not None:
                os.chmod(temporary, stat.S_IMODE(attrs.permissions))
            _set_times(temporary, attrs)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _set_times(local: Path, attrs: asyncssh.SFTPAttrs) -> None:
    if attrs.atime is not None and attrs.mtime is not None:
        os.utime(local, (attrs.atime, attrs.mtime))


async def _download(
    sftp: asyncssh.SFTPClient, remote: bytes, local: Path, attrs: asyncssh.SFTPAttrs
) -> asyncssh.SFTPAttrs:
    block = _block_size(sftp, write=False)
    # never opened unless a regular file: the node's sftp-server would block in open(2)
    # on a FIFO (the whole session with it), and a device never ends (/dev/zero)
    async with sftp.open(remote, "rb", block_size=0) as handle:
        attrs = await handle.stat()
        if (kind := _kind(attrs)) is not None:  # it changed since its stat
            raise TransferError(f"{shown(remote)}: {kind}, not a regular file")
        size = attrs.size or 0
        # the remote mode bits (less our umask), as sftp and scp do: a 0600 file stays
        # private; O_EXCL: the temporary name is new, never a link planted there
        mode = stat.S_IMODE(attrs.permissions) & 0o777 if attrs.permissions is not None else 0o666
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as sink:

            async def read(offset: int) -> bytes:
                data = await handle.read(block, offset)
                return data if isinstance(data, bytes) else data.encode()

            async def fetch(offset: int) -> None:
                end = min(offset + block, size)
                while offset < end:  # a short read: ask for the rest of this block
                    data = await read(offset)
                    if not data:  # the file shrank since its stat
                        return
                    sink.seek(offset)
                    sink.write(data)
                    offset += len(data)

            await _pipeline(fetch(offset) for offset in range(0, size, block))
            # the file may have grown since stat: read on until end of file
            offset = size
            while data := await read(offset):
                sink.seek(offset)
                sink.write(data)
                offset += len(data)
    return attrs


async def _pull_tree(
    sftp: asyncssh.SFTPClient,
    remote: bytes,
    target: Path,
    attrs: asyncssh.SFTPAttrs,
    preserve: bool,
    warn: Warn,
) -> None:
    """Copy a remote tree, one directory at a time from a stack (a deep tree would
    exhaust Python's recursion limit)."""
    pending = [(remote, target, attrs)]
    made: list[tuple[Path, asyncssh.SFTPAttrs]] = []
    while pending:
        directory, local_dir, dir_attrs = pending.pop()
        _make_dir(local_dir, dir_attrs)
        made.append((local_dir, dir_attrs))
        for entry in await sftp.readdir(directory):
            # bytes: a name that is not UTF-8 is copied as it is, not refused
            name = (
                entry.filename if isinstance(entry.filename, bytes) else os.fsencode(entry.filename)
            )
            if name in (b".", b".."):
                continue
            local = local_dir / _safe_name(os.fsdecode(name))
            source = posixpath.join(directory, name)
            entry_attrs = entry.attrs
            if _kind(entry_attrs) == "a symbolic link":
                try:
                    entry_attrs = await sftp.stat(source)  # what it points to
                except asyncssh.SFTPNoSuchFile:
                    warn(f"skipped {shown(source)}: a link to nothing")
                    continue
                if _kind(entry_attrs) == "a directory":
                    # it could lead anywhere, even back into the tree
                    warn(f"not following {shown(source)}: a link to a directory")
                    continue
            kind = _kind(entry_attrs)
            if kind == "a directory":
                pending.append((source, local, entry_attrs))
            elif kind is None:
                await _pull_file(sftp, source, local, entry_attrs, preserve)
            else:
                warn(f"skipped {shown(source)}: {kind}, not a file or a directory")
    if preserve:
        # the deepest first: a directory's times are final once its entries are in,
        # and a parent made read-only last still lets us reach its children
        for local_dir, dir_attrs in reversed(made):
            if dir_attrs.permissions is not None:
                os.chmod(local_dir, stat.S_IMODE(dir_attrs.permissions))
            _set_times(local_dir, dir_attrs)


def _make_dir(local: Path, attrs: asyncssh.SFTPAttrs) -> None:
    # a new directory gets the remote mode bits (less our umask), as sftp does, and
    # stays ours to write into; one that is there already is left as it is
    remote_mode = (
        stat.S_IMODE(attrs.permissions) & 0o777 if attrs.permissions is not None else 0o777
    )
    local.mkdir(mode=remote_mode | stat.S_IRWXU, parents=True, exist_ok=True)
