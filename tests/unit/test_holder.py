"""The holder's access rules (apssh_cli/ssh/holder.py): peer credentials, socket dir, keys."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from apssh_cli.ssh.holder import (
    HEADER_SIZE,
    MAX_FRAME,
    HoldKey,
    ProtocolError,
    ask,
    control_dir,
    decode_frame,
    effective_persist,
    encode_frame,
    frame_length,
    hop_key,
    same_user,
    set_persist,
    socket_path,
)


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


# ------------------------------------------------------------ the holder process


def start_holder(path: Path, linger: float = 60) -> subprocess.Popen[bytes]:
    log = path.with_suffix(".log")
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "apssh_cli.ssh.holder_server", str(path), "60", str(linger)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 20
    while not path.exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the holder never listened"
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(10)


def test_a_holder_answers_its_user_and_removes_its_socket_on_exit(tmp_path: Path) -> None:
    environ = {"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/nonexistent-home"}
    path = socket_path(environ)
    process = start_holder(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        answer = ask({"op": "list"}, environ)
        assert answer is not None and answer["held"] == [] and answer["pid"] == process.pid
        assert ask({"op": "close", "pattern": "x*"}, environ) == {"ok": True, "closed": 0}
        assert ask({"op": "nonsense"}, environ)["ok"] is False  # type: ignore[index]
    finally:
        stop(process)
    assert not path.exists()
    assert ask({"op": "list"}, environ) is None


def test_a_second_holder_for_the_same_socket_leaves_at_once(tmp_path: Path) -> None:
    path = socket_path({"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/h"})
    first = start_holder(path)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "apssh_cli.ssh.holder_server", str(path), "60"],
            timeout=30,
            capture_output=True,
        )
        assert second.returncode == 0
        assert first.poll() is None and path.exists()
    finally:
        stop(first)


def test_the_holder_exits_when_its_socket_goes(tmp_path: Path) -> None:
    # what happens at logout: the session manager removes $XDG_RUNTIME_DIR
    path = socket_path({"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/h"})
    process = start_holder(path, linger=600)
    try:
        path.unlink()
        assert process.wait(15) == 0
    finally:
        stop(process)


def test_a_holder_lingers_then_exits_when_it_holds_nothing(tmp_path: Path) -> None:
    path = socket_path({"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/h"})
    process = start_holder(path, linger=1)
    try:
        assert process.wait(15) == 0
    finally:
        stop(process)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_a_real_holder_refuses_another_user(tmp_path: Path) -> None:
    directory = Path(tempfile.mkdtemp())  # nobody cannot traverse pytest's tmp_path
    directory.chmod(0o700)
    path = directory / "apssh" / "holder.sock"
    path.parent.mkdir(mode=0o700)
    process = start_holder(path)
    try:
        # open the way for the test only: the holder's own peer check must refuse
        directory.chmod(0o755)
        path.parent.chmod(0o755)
        path.chmod(0o666)
        pid = os.fork()
        if pid == 0:  # the child becomes nobody and asks for the list
            code = 3
            try:
                os.setuid(65534)
                client = socket.socket(socket.AF_UNIX)
                client.settimeout(10)
                client.connect(str(path))
                try:
                    client.sendall(encode_frame({"op": "list"}))
                    code = 0 if client.recv(1) == b"" else 1  # 0: hung up without a word
                except (BrokenPipeError, ConnectionResetError):
                    code = 0  # hung up before reading what we sent
            except BaseException as exc:
                (directory / "child-error").write_text(repr(exc))
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        error = directory / "child-error"
        assert os.waitstatus_to_exitcode(status) == 0, error.exists() and error.read_text()
        path.parent.chmod(0o700)
        directory.chmod(0o700)
        with socket.socket(socket.AF_UNIX) as own:
            own.settimeout(10)
            own.connect(str(path))
            own.sendall(encode_frame({"op": "list"}))
            assert own.recv(1) != b""  # this user gets an answer
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def test_frames_round_trip_and_bad_ones_are_refused() -> None:
    frame = encode_frame({"op": "list", "x": [1, "é"]})
    assert frame_length(frame[:HEADER_SIZE]) == len(frame) - HEADER_SIZE
    assert decode_frame(frame[HEADER_SIZE:]) == {"op": "list", "x": [1, "é"]}
    with pytest.raises(ProtocolError):
        frame_length((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ProtocolError):
        decode_frame(b"[1]")
    with pytest.raises(ProtocolError):
        decode_frame(b"\xff{")


def test_hop_keys_ignore_the_label_but_not_the_settings() -> None:
    hop = {"label": "a", "host": "h", "port": 22, "username": "u", "keys": None,
           "policy": "strict", "known_hosts": ["/k"], "ciphers": None,
           "connect_timeout": 5}  # fmt: skip
    assert hop_key(hop) == hop_key({**hop, "label": "b", "connect_timeout": 9})
    assert hop_key(hop) != hop_key({**hop, "ciphers": "aes128-ctr"})
    assert hop_key(hop) != hop_key(hop, (hop_key({**hop, "host": "bastion"}),))


def test_persist_precedence() -> None:
    try:
        set_persist(override=None, default=None)
        assert effective_persist(None) == 0
        set_persist(override=None, default=30)
        assert effective_persist(None) == 30 and effective_persist(5) == 5
        set_persist(override=0, default=30)
        assert effective_persist(5) == 0
    finally:
        set_persist()


def test_socket_paths_differ_by_home(tmp_path: Path) -> None:
    one = socket_path({"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/home/a"})
    two = socket_path({"XDG_RUNTIME_DIR": str(tmp_path), "HOME": "/home/b"})
    assert one != two and one.parent == two.parent


def test_a_gateways_failure_names_every_gateway_on_the_way() -> None:
    from apssh_cli.errors import HostKeyRefusedError, UnreachableError
    from apssh_cli.ssh.holder_server import _behind

    route = [{"label": "g1"}, {"label": "g2"}, {"label": "node"}]
    error = _behind(route, 0, UnreachableError("g1", "timed out"))
    assert isinstance(error, UnreachableError)
    assert (error.host, error.message) == ("node", "gateway g2: gateway g1: timed out")
    # the node's own refusal stays what it is
    own = HostKeyRefusedError("node", "changed")
    assert _behind(route, 2, own) is own
