"""Defaults outside the inventory: the config file, APSSH_* variables, their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from apssh_cli.cli.defaults import SETTINGS, config_file, load_defaults
from apssh_cli.cli.main import main
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Overrides, Target, apply_overrides


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_xdg_then_home(tmp_path: Path) -> None:
    xdg = write(tmp_path / "xdg" / "apssh" / "config.toml", "window = 3\n")
    home = write(tmp_path / "home" / ".config" / "apssh" / "config.toml", "window = 4\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert config_file(env) == xdg
    assert load_defaults(env).get("window") == 3
    xdg.unlink()
    assert config_file(env) == home
    assert config_file({**env, "APSSH_CONFIG": ""}) is None
    assert config_file({"HOME": str(tmp_path / "nobody")}) is None


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'window = 3\ntimeout = "2m"\nuser = "root"\n')
    env = {"APSSH_CONFIG": str(path), "APSSH_WINDOW": "7", "APSSH_TIMEOUT": "500ms"}
    defaults = load_defaults(env)
    assert defaults.get("window") == 7 and defaults.settings["window"].source == "APSSH_WINDOW"
    assert defaults.get("timeout") == 0.5
    assert defaults.get("user") == "root" and defaults.settings["user"].source == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("windw = 3\n", "unknown key 'windw' (did you mean 'window'?)"),
        ("window = 0\n", "window: expected a whole number from 1"),
        ('timeout = "ten"\n', "timeout: expected a duration above 0"),
        ('known_hosts = "maybe"\n', "known_hosts: expected one of strict, accept-new, off"),
        ("window = [\n", "not valid TOML"),
        ('user = ""\n', "user: expected a non-empty string"),
    ],
)
def test_bad_config_is_one_error_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=r"c\.toml") as info:
        load_defaults({"APSSH_CONFIG": str(path)})
    assert message in str(info.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"APSSH_WINDOW='lots': expected a whole number"):
        load_defaults({"APSSH_WINDOW": "lots"})
    with pytest.raises(ConfigError, match="no such config file"):
        load_defaults({"APSSH_CONFIG": "/nonexistent/apssh.toml"})


def test_every_setting_has_an_apssh_variable() -> None:
    assert {variable for variable, _ in SETTINGS.values()} == {
        "APSSH_WINDOW", "APSSH_TIMEOUT", "APSSH_CONNECT_TIMEOUT", "APSSH_KNOWN_HOSTS",
        "APSSH_USER", "APSSH_INVENTORY", "APSSH_COLOR", "APSSH_PERSIST",
    }  # fmt: skip


def test_host_defaults_only_where_the_inventory_says_nothing() -> None:
    bare = Target("a", (Host("a", "a"),), from_inventory=True)
    set_ = Target("b", (Host("b", "b", user="admin", known_hosts_policy="off"),))
    overrides = Overrides(default_user="root", default_known_hosts="strict")
    hop = apply_overrides(bare, overrides).route[-1]
    assert (hop.user, hop.known_hosts_policy) == ("root", "strict")
    hop = apply_overrides(set_, overrides).route[-1]
    assert (hop.user, hop.known_hosts_policy) == ("admin", "off")
    # -l wins over the default
    hop = apply_overrides(bare, Overrides(user="me", default_user="root")).route[-1]
    assert hop.user == "me"


def run_main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


@pytest.fixture
def local_inventory(tmp_path: Path) -> str:
    path = tmp_path / "local.toml"
    path.write_text('[locals]\nhosts = { "loc[1:2]" = { connection = "local" } }\n')
    return str(path)


def test_precedence_command_line_environment_file(
    tmp_path: Path,
    local_inventory: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(
        tmp_path / "c.toml", f'timeout = "30s"\nwindow = 2\ninventory = "{local_inventory}"\n'
    )
    monkeypatch.setenv("APSSH_CONFIG", str(config))
    # the file's inventory and window; the environment's timeout terminates the sleep
    monkeypatch.setenv("APSSH_TIMEOUT", "300ms")
    assert run_main(["-v", "sleep", "20"]) == 3
    err = capsys.readouterr().err
    assert "setting timeout = 0.3 (APSSH_TIMEOUT)" in err
    assert f"setting window = 2 ({config})" in err
    assert "setting connect_timeout: built-in default" in err
    # the command line wins over both
    assert run_main(["-v", "--timeout", "20", "-w", "1", "echo", "hi"]) == 0
    err = capsys.readouterr().err
    assert "setting timeout = 20.0 (command line)" in err
    assert "setting window = 1 (command line)" in err


def test_a_bad_config_file_runs_nothing(
    tmp_path: Path,
    local_inventory: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("APSSH_CONFIG", str(write(tmp_path / "c.toml", "timout = 3\n")))
    marker = tmp_path / "ran"
    assert run_main(["-i", local_inventory, "touch", str(marker)]) == 1
    assert "unknown key 'timout' (did you mean 'timeout'?)" in capsys.readouterr().err
    assert not marker.exists()


def test_persist_default_from_the_environment() -> None:
    assert load_defaults({"APSSH_CONFIG": "", "APSSH_PERSIST": "10m"}).get("persist") == 600
    assert load_defaults({"APSSH_CONFIG": "", "APSSH_PERSIST": "0"}).get("persist") == 0
    with pytest.raises(ConfigError, match="APSSH_PERSIST='ever'"):
        load_defaults({"APSSH_CONFIG": "", "APSSH_PERSIST": "ever"})
