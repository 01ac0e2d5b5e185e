"""The holder's access rules (apssh_cli/ssh/holder.py): peer credentials, socket dir, keys."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from apssh_cli.ssh.holder import HoldKey, control_dir, same_user, socket_path


def test_same_user_peer_is_accepted() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert same_user(left)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_another_user_is_refused() -> None:
    # under /tmp itself: nobody cannot traverse pytest's 0700 tmp_path
    directory = Path(tempfile.mkdtemp())
    directory.chmod(0o777)
    path = directory / "s"
    server = socket.socket(socket.AF_UNIX)
    server.settimeout(10)  # a child that failed to connect must not hang the test
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen(1)
    pid = os.fork()
    if pid == 0:  # the child becomes nobody and connects
        try:
            os.setuid(65534)
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(path))
            client.recv(1)
        finally:
            os._exit(0)
    conn, _ = server.accept()
    with server, conn:
        assert not same_user(conn)
    os.waitpid(pid, 0)
    shutil.rmtree(directory)


def test_control_dir_is_private(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    found = control_dir({"XDG_RUNTIME_DIR": str(runtime)})
    assert found == runtime / "apssh"
    assert stat.S_IMODE(found.stat().st_mode) == 0o700
    assert socket_path({"XDG_RUNTIME_DIR": str(runtime)}).parent == found


def test_control_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / f"apssh-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="open to other users"):
        control_dir({"TMPDIR": str(tmp_path)})


def test_keys_differ_by_every_setting() -> None:
    bastion = HoldKey("b", 22, "u", None, "accept-new", "/k")
    base = HoldKey("h", 22, "u", None, "accept-new", "/k", (bastion,))
    variants = [
        HoldKey("h2", 22, "u", None, "accept-new", "/k", (bastion,)),
        HoldKey("h", 2222, "u", None, "accept-new", "/k", (bastion,)),
        HoldKey("h", 22, "v", None, "accept-new", "/k", (bastion,)),
        HoldKey("h", 22, "u", ("/id",), "accept-new", "/k", (bastion,)),
        HoldKey("h", 22, "u", None, "strict", "/k", (bastion,)),
        HoldKey("h", 22, "u", None, "accept-new", "/k2", (bastion,)),
        HoldKey("h", 22, "u", None, "accept-new", "/k"),
    ]
    assert all(variant != base for variant in variants)
    assert base == HoldKey("h", 22, "u", None, "accept-new", "/k", (bastion,))
    assert base.describe() == "u@h:22 via u@b:22"
