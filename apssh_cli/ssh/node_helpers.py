"""The node methods that upstream apssh scripts call directly, on top of SshNode's own.

Upstream's ``SshNode``/``SshProxy`` offer ``run``, ``mkdir``, ``put_file_s``,
``get_file_s``, ``put_string_script``, ``distance``, ``connect_lazy``,
``sftp_connect_lazy`` and ``is_connected()``. :class:`UpstreamNodeMixin` gives
SshNode the same names, built on its primitives (``run_shell``, the shared SFTP
session, :mod:`apssh_cli.ssh.sftp`), so that transfers stay atomic and errors
are ours.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from apssh_cli.results import CommandResult
from apssh_cli.ssh import hostkeys, sftp

__all__ = ["ConnectedFlag", "UpstreamNodeMixin", "upstream_known_hosts"]

# what upstream passes on to asyncssh's SFTP get/put, and what we honour of it
_TRANSFER_KEYWORDS = {"preserve", "recurse", "follow_symlinks"}


class ConnectedFlag:
    """Whether a node is connected, read as a bool or called as upstream does.

    ``if node.is_connected:`` and ``if node.is_connected():`` both work.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bool) -> None:
        self._value = value

    def __bool__(self) -> bool:
        return self._value

    def __call__(self) -> bool:
        return self._value

    def __eq__(self, other: object) -> bool:
        return bool(self) == other if isinstance(other, bool | ConnectedFlag) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return repr(self._value)


def upstream_known_hosts(
    known_hosts: str | Path | None, known_hosts_file: str | Path | None
) -> tuple[str, str | Path | None]:
    """(policy, file) from SshNode's ``known_hosts=``, which may be upstream's file path.

    None is the default policy; a policy name stays one; anything else that
    looks like a path (a ``/`` in it, a name ending in ``known_hosts``, or an
    existing file) is the file, checked with the default policy. Host keys stay
    verified either way; another word is refused as an unknown policy.
    """
    if known_hosts is None:
        return hostkeys.DEFAULT_POLICY, known_hosts_file
    if isinstance(known_hosts, Path) or (
        known_hosts not in hostkeys.POLICIES
        and (
            "/" in known_hosts
            or known_hosts.endswith("known_hosts")
            or Path(known_hosts).expanduser().exists()
        )
    ):
        return hostkeys.DEFAULT_POLICY, Path(known_hosts).expanduser()
    return known_hosts, known_hosts_file


def _transfer_options(kwds: dict[str, Any]) -> tuple[bool, bool]:
    unknown = set(kwds) - _TRANSFER_KEYWORDS
    if unknown:
        raise TypeError(f"unsupported transfer keyword(s): {', '.join(sorted(unknown))}")
    return bool(kwds.get("recurse", False)), bool(kwds.get("preserve", False))


def _as_list(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, str | Path) else list(paths)


if TYPE_CHECKING:
    from apssh_cli.ssh.holder_client import HeldRoute


class _Node(Protocol):
    """What the helpers use of SshNode."""

    _conn: asyncssh.SSHClientConnection | HeldRoute | None
    _target: Any
    hostname: str
    username: str | None

    @property
    def gateway(self) -> Any: ...

    async def connect(self) -> None: ...

    async def sftp_client(self) -> asyncssh.SFTPClient: ...

    async def open_sftp_session(self) -> asyncssh.SFTPClient: ...

    async def run_shell(
        self, command: str, *, display: str, x11: bool = False
    ) -> CommandResult: ...


class UpstreamNodeMixin:
    """Upstream apssh's node helpers, for scripts that call them directly."""

    async def connect_lazy(self: _Node) -> asyncssh.SSHClientConnection | HeldRoute | None:
        """Connect if needed; return the connection (upstream's name for :meth:`connect`).

        A node held by ``--persist`` returns its share of the holder's link
        (:class:`~apssh_cli.ssh.holder_client.HeldRoute`): ``run``, ``create_process``
        and ``start_sftp_client``, as on a connection."""
        await self.connect()
        return self._conn

    async def sftp_connect_lazy(self: _Node) -> asyncssh.SFTPClient:
        """Start the node's SFTP session if needed, and return it."""
        return await self.sftp_client()

    async def run(self: _Node, command: object, **kwds: Any) -> int:
        """Run ``command`` (streamed through the formatter); return its exit status.

        Args:
            command: the command line (anything whose ``str()`` is one).
            kwds: ``x11_forwarding=True`` forwards X11, as upstream.
        """
        x11 = bool(kwds.pop("x11_forwarding", False))
        if kwds:
            raise TypeError(f"unsupported keyword(s): {', '.join(sorted(kwds))}")
        line = str(command)
        extra: dict[str, Any] = {"x11": True} if x11 else {}
        result = await self.run_shell(line, display=line, **extra)
        return result.rc

    async def mkdir(self: _Node, remotedir: str) -> bool:
        """Create a remote directory unless it exists (its parent must exist); True."""
        client = await self.sftp_client()
        try:
            if not await client.isdir(remotedir):
                await client.mkdir(remotedir)
        except asyncssh.SFTPError as exc:
            raise sftp.TransferError(f"mkdir {remotedir}: {exc.reason}") from exc
        return True

    async def put_file_s(
        self: _Node,
        localpaths: str | Path | Sequence[str | Path],
        remotepath: str,
        **kwds: Any,
    ) -> bool:
        """Copy local files to the node (as :class:`~apssh_cli.commands.Push`); True.

        Args:
            kwds: ``recurse``, ``preserve`` (``follow_symlinks`` is accepted:
                links are always followed).

        Raises:
            TransferError: a missing source, an SFTP error.
        """
        recurse, preserve = _transfer_options(kwds)
        sources = [Path(path) for path in _as_list(localpaths)]
        client = await self.sftp_client()
        await sftp.push(
            client,
            sources,
            str(remotepath),
            recurse=recurse,
            preserve=preserve,
            more_sessions=self.open_sftp_session,
        )
        return True

    async def get_file_s(
        self: _Node,
        remotepaths: str | Sequence[str],
        localpath: str | Path,
        **kwds: Any,
    ) -> bool:
        """Copy files from the node (as :class:`~apssh_cli.commands.Pull`); True.

        Raises:
            TransferError: a missing source, an SFTP error.
        """
        recurse, preserve = _transfer_options(kwds)
        sources = [str(path) for path in _as_list(remotepaths)]
        client = await self.sftp_client()
        await sftp.pull(client, sources, localpath, recurse=recurse, preserve=preserve)
        return True

    async def put_string_script(
        self: _Node, script_body: str, remotefile: str, **kwds: Any
    ) -> bool:
        """Write ``script_body`` to ``remotefile`` on the node, mode 755; True.

        Args:
            kwds: ``encoding`` (default utf-8) and ``errors``, as upstream.
        """
        encoding = kwds.pop("encoding", "utf-8")
        errors = kwds.pop("errors", "strict")
        if kwds:
            raise TypeError(f"unsupported keyword(s): {', '.join(sorted(kwds))}")
        client = await self.sftp_client()
        directory = posixpath.dirname(remotefile)
        try:
            async with client.open(remotefile, "wb") as handle:
                await handle.write(script_body.encode(encoding, errors))
            await client.chmod(remotefile, 0o755)
        except asyncssh.SFTPError as exc:
            where = remotefile if not directory else f"{remotefile} (in {directory})"
            raise sftp.TransferError(f"cannot write {where}: {exc.reason}") from exc
        return True

    def user_host(self: _Node) -> str:
        """``user@hostname`` as given (or as ~/.ssh/config says, once resolved)."""
        user = self.username or (self._target.username if self._target is not None else None)
        return f"{user}@{self.hostname}" if user else self.hostname

    def distance(self: _Node) -> int:
        """Hops from this machine: 1 for a direct node, one more per gateway."""
        hops = 1
        gateway = self.gateway
        while gateway is not None:
            hops += 1
            gateway = gateway.gateway
        return hops
