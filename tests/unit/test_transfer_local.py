"""What transfers and ``-o`` write on this machine, without SSH: private output files,
one local directory per pulling host (refused before anything runs otherwise)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from apssh_cli.cli.main import main
from apssh_cli.output import STDOUT, SubdirFormatter


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_output_files_and_their_directory_are_private(tmp_path: Path) -> None:
    formatter = SubdirFormatter(tmp_path / "out" / "run", out_suffix=".out")
    formatter.line("secret\n", None, "h1")
    formatter.close_host("h1", create=True)
    formatter.close()
    run = tmp_path / "out" / "run"
    assert mode(run) == 0o700  # the umask can only take bits away
    assert mode(run / "h1.out") == 0o600
    assert mode(run / "h1.err") == 0o600
    assert (run / "h1.out").read_text() == "secret\n"
    assert formatter.path("h1", STDOUT) == run / "h1.out"


def inventory(tmp_path: Path, sites: list[str]) -> str:
    path = tmp_path / "inv.toml"
    lines = [
        f'[g.hosts.h{index}]\nconnection = "local"\nsite = "{site}"\n'
        for index, site in enumerate(sites)
    ]
    path.write_text("".join(lines))
    return str(path)


def pull(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["pull", *argv])
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("dry_run", [[], ["-n"]])
def test_two_hosts_into_one_local_directory_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: list[str]
) -> None:
    hosts = inventory(tmp_path, ["paris", "lyon", "paris"])
    results = tmp_path / "results"
    status, err = pull(
        ["-i", hosts, "-g", "g", *dry_run, "/etc/hostname", f"{results}/{{site}}"], capsys
    )
    assert status == 1
    assert err == (
        f"apssh: hosts h0 and h2 would pull into the same local directory {results}/paris: "
        "give each host its own (with {host})\n"
    )
    assert not results.exists()


def test_two_spellings_of_one_directory_are_one_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = inventory(tmp_path, ["a", "./a"])
    status, err = pull(["-i", hosts, "-g", "g", "/etc/hostname", f"{tmp_path}/{{site}}"], capsys)
    assert status == 1
    assert "hosts h0 and h1 would pull into the same local directory" in err


def test_a_host_directory_inside_another_hosts_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = inventory(tmp_path, ["", "sub"])
    status, err = pull(["-i", hosts, "-g", "g", "/etc/hostname", f"{tmp_path}/r/{{site}}"], capsys)
    assert status == 1
    assert f"host h1's local directory {tmp_path}/r/sub is inside host h0's" in err
    assert not (tmp_path / "r").exists()


def test_hosts_of_their_own_directories_pass_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = inventory(tmp_path, ["paris", "paris"])
    status, err = pull(
        ["-i", hosts, "-g", "g", "-n", "/etc/hostname", f"{tmp_path}/{{site}}/{{host}}"], capsys
    )
    assert status == 0, err
    status, err = pull(["-i", hosts, "-g", "g", "-n", "/etc/hostname", str(tmp_path)], capsys)
    assert status == 0, err  # LOCALDIR/<host>
