"""SFTP transfers for Push and Pull: binary-safe, never a truncated file under its name.

Every file is written under a temporary name next to its target (on the node for
a push, locally for a pull) and renamed when complete. SFTP and OS errors become
:class:`TransferError`, which the commands report as a failed command (rc 1).
"""

from __future__ import annotations

import os
import posixpath
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import asyncssh

from apssh_cli.ssh.process import shielded_cleanup


class TransferError(Exception):
    """A Push or Pull could not complete (reported as a failed command, rc 1)."""


@contextmanager
def _transfer_errors() -> Iterator[None]:
    try:
        yield
    except asyncssh.SFTPError as exc:
        raise TransferError(f"sftp: {exc.reason}") from exc
    except OSError as exc:
        raise TransferError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc


async def push(
    sftp: asyncssh.SFTPClient,
    localpaths: Sequence[Path],
    remotepath: str,
    *,
    recurse: bool = False,
    preserve: bool = False,
) -> None:
    """Copy local files (or trees) to ``remotepath``; several need a remote directory.

    Raises:
        TransferError: a missing source, a directory without ``recurse``, an SFTP error.
    """
    with _transfer_errors():
        into_dir = await sftp.isdir(remotepath)
        if len(localpaths) > 1 and not into_dir:
            raise TransferError(f"{remotepath}: not a directory on the node")
        for local in localpaths:
            target = posixpath.join(remotepath, local.name) if into_dir else remotepath
            if local.is_dir():
                if not recurse:
                    raise TransferError(f"{local}: is a directory (use recurse)")
                await _push_tree(sftp, local, target, preserve)
            elif local.exists():
                await _push_file(sftp, local, target, preserve)
            else:
                raise TransferError(f"{local}: no such file")


async def pull(
    sftp: asyncssh.SFTPClient,
    remotepaths: Sequence[str],
    localpath: str | Path,
    *,
    recurse: bool = False,
    preserve: bool = False,
) -> None:
    """Copy files (or trees) from the node to ``localpath``, creating missing local directories.

    ``localpath`` is a directory to copy into when it is one already, when its
    name ends with ``/``, or when there are several remote paths; otherwise it
    names the copy.

    Raises:
        TransferError: a missing source, a directory without ``recurse``, a
            local path that is not a directory where one is needed, an SFTP error.
    """
    with _transfer_errors():
        wants_dir = len(remotepaths) > 1 or str(localpath).endswith(("/", os.sep))
        localpath = Path(localpath)
        if wants_dir and not localpath.is_dir():
            if localpath.exists():
                raise TransferError(f"{localpath}: not a local directory")
            localpath.mkdir(parents=True)
        into_dir = localpath.is_dir()
        for remote in remotepaths:
            name = posixpath.basename(remote.rstrip("/")) or remote
            target = localpath / name if into_dir else localpath
            if await sftp.isdir(remote):
                if not recurse:
                    raise TransferError(f"{remote}: is a directory (use recurse)")
                await _pull_tree(sftp, remote, target, preserve)
            else:
                await _pull_file(sftp, remote, target, preserve)


async def _push_tree(sftp: asyncssh.SFTPClient, root: Path, target: str, preserve: bool) -> None:
    for directory, _dirs, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        remote_dir = posixpath.join(target, *relative.parts) if relative.parts else target
        await sftp.makedirs(remote_dir, exist_ok=True)
        for name in sorted(files):
            await _push_file(
                sftp, Path(directory, name), posixpath.join(remote_dir, name), preserve
            )
    if preserve:
        info = root.stat()
        await sftp.setstat(
            target,
            asyncssh.SFTPAttrs(
                permissions=stat.S_IMODE(info.st_mode),
                atime=int(info.st_atime),
                mtime=int(info.st_mtime),
            ),
        )


def _temp_name(name: str) -> str:
    return f".{name}.apssh-{secrets.token_hex(6)}"


async def _push_file(sftp: asyncssh.SFTPClient, local: Path, target: str, preserve: bool) -> None:
    directory, name = posixpath.split(target)
    temporary = posixpath.join(directory, _temp_name(name))
    try:
        await sftp.put(str(local), temporary, preserve=preserve)
        try:
            await sftp.posix_rename(temporary, target)
        except asyncssh.SFTPOpUnsupported:
            # servers without the OpenSSH extension: rename refuses to overwrite
            if await sftp.exists(target):
                await sftp.remove(target)
            await sftp.rename(temporary, target)
    except BaseException:
        await shielded_cleanup(_quiet_remove(sftp, temporary))
        raise


async def _quiet_remove(sftp: asyncssh.SFTPClient, path: str) -> None:
    with suppress(asyncssh.SFTPError, OSError):
        await sftp.remove(path)


async def _pull_file(sftp: asyncssh.SFTPClient, remote: str, target: Path, preserve: bool) -> None:
    temporary = target.parent / _temp_name(target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        await sftp.get(remote, str(temporary), preserve=preserve)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


async def _pull_tree(sftp: asyncssh.SFTPClient, remote: str, target: Path, preserve: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in await sftp.readdir(remote):
        name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
        if name in (".", ".."):
            continue
        source = posixpath.join(remote, name)
        if await sftp.isdir(source):
            await _pull_tree(sftp, source, target / name, preserve)
        else:
            await _pull_file(sftp, source, target / name, preserve)
    if preserve:
        attrs = await sftp.stat(remote)
        if attrs.permissions is not None:
            os.chmod(target, stat.S_IMODE(attrs.permissions))
        if attrs.atime is not None and attrs.mtime is not None:
            os.utime(target, (attrs.atime, attrs.mtime))
