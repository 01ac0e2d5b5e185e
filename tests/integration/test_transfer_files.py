"""What a transfer writes, against real OpenSSH: modes, special files, deep trees, names.

- a pulled file keeps its remote mode bits (less the local umask), as sftp and scp do;
- a FIFO, a socket or a device is never read: pulled by name, the transfer fails with
  one line; met in a recursive pull, it is skipped with one line (it used to hang, and
  ``/dev/zero`` filled the local disk);
- a tree 1500 directories deep goes both ways (it used to end in RecursionError);
- remote names are data: written locally as they are (newlines, escapes, bytes that
  are not UTF-8), and escaped where a line quotes them;
- two hosts whose pull would write the same local directory are refused before
  anything runs (the second used to overwrite the first, exit 0).

Each test has its own sshd (``sshd_factory``) and a time bound that only catches a hang.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab
from apssh_cli.lab import Endpoint, KeyPair
from tests.integration.faults import HANG, Done, apssh, target_args

pytestmark = pytest.mark.integration

DEPTH = 1500  # far past Python's recursion limit (1000)


def exec_ok(endpoint: Endpoint, command: str) -> str:
    rc, output = lab.exec_in(endpoint, command)
    assert rc == 0, output
    return output


def clean(done: Done) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "RecursionError" not in done.stderr, done.stderr
    assert "never retrieved" not in done.stderr, done.stderr
    assert done.elapsed < HANG, done.stderr


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def no_temporary(root: Path) -> None:
    leftovers = [name for _, _, files in os.walk(root) for name in files if ".apssh-" in name]
    assert leftovers == []


def test_a_pulled_file_keeps_its_remote_mode(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    exec_ok(
        node,
        "umask 0 && mkdir -p /m/private && cd /m && for m in 600 640 755 444 700; do "
        "echo $m > f$m && chmod $m f$m; done && chmod 700 private && echo s > private/secret "
        "&& chmod 600 private/secret",
    )
    out = tmp_path / "out"
    names = ["f600", "f640", "f755", "f444", "f700"]
    done = apssh(
        "pull", *target_args(node, ssh_keypair), *(f"/m/{n}" for n in names), str(out), home=home
    )
    assert done.returncode == 0, done.stderr
    clean(done)
    umask = current_umask()
    got = out / node.host
    assert {n: mode(got / n) for n in names} == {n: int(n[1:], 8) & ~umask for n in names}
    assert (got / "f600").read_text() == "600\n"
    # a recursive pull: files and directories alike (a directory stays writable to us)
    done = apssh(
        "pull", *target_args(node, ssh_keypair), "-r", "/m", str(tmp_path / "r"), home=home
    )
    assert done.returncode == 0, done.stderr
    tree = tmp_path / "r" / node.host / "m"
    assert mode(tree / "private") == 0o700
    assert mode(tree / "private" / "secret") == 0o600
    assert mode(tree / "f640") == 0o640 & ~umask
    no_temporary(tmp_path)


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/root/fifo", "a FIFO"), ("/dev/zero", "a character device"), ("/root/link", "a FIFO")],
)
def test_pulling_a_special_file_by_name_fails_with_one_line(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path, path: str, kind: str
) -> None:
    node = sshd_factory()
    exec_ok(node, "mkfifo /root/fifo && ln -s fifo /root/link")
    out = tmp_path / "out"
    # no --timeout: it used to hang on the FIFO, and fill the local disk from /dev/zero
    done = apssh("pull", *target_args(node, ssh_keypair), path, str(out), home=home)
    clean(done)
    assert done.returncode == 2, done.stderr
    assert f"{path}: {kind}, not a regular file" in done.stderr
    assert not out.exists()  # nothing, not even a temporary, nor an empty directory


def test_a_recursive_pull_skips_special_files_with_one_line_each(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    exec_ok(
        node,
        "mkdir -p /t/sub && echo a > /t/a && echo b > /t/sub/b && mkfifo /t/fifo && "
        "ln -s /dev/zero /t/zero && ln -s ../fifo /t/sub/fifolink && mknod /t/null c 1 3 && "
        "ssh-agent -a /t/sock",
    )
    out = tmp_path / "out"
    done = apssh("pull", *target_args(node, ssh_keypair), "-r", "/t", str(out), home=home)
    clean(done)
    assert done.returncode == 0, done.stderr
    tree = out / node.host / "t"
    copied = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    assert copied == ["a", "sub", "sub/b"]
    assert (tree / "sub" / "b").read_text() == "b\n"
    skipped = [line for line in done.stderr.splitlines() if "not a file or a directory" in line]
    assert len(skipped) == 5, done.stderr
    for name, kind in [
        ("/t/fifo", "a FIFO"),
        ("/t/zero", "a character device"),
        ("/t/null", "a character device"),
        ("/t/sub/fifolink", "a FIFO"),
        ("/t/sock", "a socket"),
    ]:
        assert any(f"skipped {name}: {kind}, not a file or" in s for s in skipped), skipped
    no_temporary(out)


def deep_path(depth: int) -> str:
    return "/".join(["d"] * depth)


def test_a_deep_tree_is_pulled_and_pushed(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    deep = deep_path(DEPTH)
    exec_ok(node, f"mkdir -p /deep/{deep} && echo leaf > /deep/{deep}/leaf")
    out = tmp_path / "o"
    try:
        done = apssh("pull", *target_args(node, ssh_keypair), "-r", "/deep", str(out), home=home)
        clean(done)
        assert done.returncode == 0, done.stderr
        assert (out / node.host / "deep" / deep / "leaf").read_text() == "leaf\n"
        # and back: the pulled tree pushed to another place
        pushed = str(out / node.host / "deep")
        done = apssh("push", *target_args(node, ssh_keypair), "-r", pushed, "/back", home=home)
        clean(done)
        assert done.returncode == 0, done.stderr
        assert exec_ok(node, f"cat /back/{deep}/leaf") == "leaf\n"
    finally:
        # pytest's own clean-up (shutil.rmtree) recurses: it would fail on this tree
        subprocess.run(["rm", "-rf", str(out)], check=True)


def test_remote_names_are_written_as_they_are_and_quoted_escaped(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    # a newline, an escape sequence, a tab, a byte that is not UTF-8; a FIFO whose name
    # would clear the screen if a line printed it raw
    exec_ok(
        node,
        "mkdir /h && cd /h && printf 1 > \"$(printf 'nl\\nname')\" && "
        "printf 2 > \"$(printf 'esc\\033[31mred')\" && printf 3 > \"$(printf 'tab\\tx')\" && "
        "printf 4 > \"$(printf 'bad\\377byte')\" && mkfifo \"$(printf 'f\\033[2Jx')\"",
    )
    out = tmp_path / "out"
    done = apssh("pull", *target_args(node, ssh_keypair), "-r", "/h", str(out), home=home)
    clean(done)
    assert done.returncode == 0, done.stderr
    tree = out / node.host / "h"
    names = {os.fsencode(p.name): p.read_bytes() for p in tree.iterdir()}
    assert names == {
        b"nl\nname": b"1",
        b"esc\x1b[31mred": b"2",
        b"tab\tx": b"3",
        b"bad\xffbyte": b"4",
    }
    assert "\x1b" not in done.stderr
    assert "skipped /h/f\\x1b[2Jx: a FIFO, not a file or a directory" in done.stderr
    assert [p.name for p in out.iterdir()] == [node.host]


def two_hosts_inventory(path: Path, nodes: list[Endpoint], keypair: KeyPair, site: str) -> Path:
    text = ""
    for index, node in enumerate(nodes):
        text += (
            f'[g.hosts.n{index}]\nhostname = "{node.host}"\nport = {node.port}\n'
            f'user = "root"\nidentity_file = "{keypair.private_path}"\n'
            f'known_hosts = "off"\nsite = "{site}"\n'
        )
    path.write_text(text)
    return path


def test_two_hosts_pulling_into_one_local_directory_are_refused_before_anything_runs(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    nodes = [sshd_factory(name="one"), sshd_factory(name="two")]
    inventory = two_hosts_inventory(tmp_path / "inv.toml", nodes, ssh_keypair, "paris")
    results = tmp_path / "results"
    done = apssh(
        "pull", "-i", str(inventory), "-g", "g", "/etc/hostname", f"{results}/{{site}}", home=home
    )
    clean(done)
    assert done.returncode == 1, done.stderr
    assert "n0 and n1" in done.stderr and "same local directory" in done.stderr, done.stderr
    assert not results.exists()  # nothing ran, nothing was made
    # one host each: fine
    done = apssh(
        "pull",
        "-i",
        str(inventory),
        "-g",
        "g",
        "/etc/hostname",
        f"{results}/{{site}}/{{host}}",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    assert (results / "paris" / "n0" / "hostname").read_text() == f"{nodes[0].name}\n"
    assert (results / "paris" / "n1" / "hostname").read_text() == f"{nodes[1].name}\n"
