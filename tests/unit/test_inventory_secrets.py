"""Inventory secrets: the naming rule, nested values, and every place apssh renders one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from apssh_cli.inventory.model import Inventory
from apssh_cli.inventory.secrets import (
    MASK,
    SecretMask,
    is_secret_name,
    mask_vars,
    secret_values,
)

from .climain import apssh


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "ansible_password",
        "ansible_become_pass",
        "ansible_ssh_pass",
        "db_passwd",
        "ssh_passphrase",
        "client_secret",
        "aws_secret_access_key",
        "api_token",
        "VAULT_TOKEN",
        "credential",
        "credentials",
        "api_key",
        "apiKey",
        "private_key",
        "ssh_key",
        "key",
        "sshPass",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "keepalive",
        "key_file",
        "keyboard",
        "monkey",
        "passenger",
        "compass",
        "bypass",
        "identity_file",
        "known_hosts",
        "host_key_checking",
        "user",
        "role",
    ],
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_nested_tables_and_arrays_are_masked() -> None:
    variables = {
        "db": {"user": "app", "password": "hunter22", "replicas": [{"token": "t-1234"}]},
        "tokens": ["a-secret", "b-secret"],  # a secret name: the whole array
        "keepalive": 5,
        "credentials": {"user": "x", "pin": 1234},  # a secret table: masked whole
    }
    assert mask_vars(variables) == {
        "db": {"user": "app", "password": MASK, "replicas": [{"token": MASK}]},
        "tokens": MASK,
        "keepalive": 5,
        "credentials": MASK,
    }
    assert secret_values(variables) == {"hunter22", "t-1234", "a-secret", "b-secret", "x", "1234"}


def test_mask_replaces_values_in_text_and_data() -> None:
    mask = SecretMask(["hunter22", "hunter22-long", "ab"])  # "ab": too short to mask in text
    assert mask.text("p=hunter22-long q=hunter22 ab") == f"p={MASK} q={MASK} ab"
    assert mask.data({"cmd": ["echo hunter22"], "n": 3}) == {"cmd": [f"echo {MASK}"], "n": 3}
    assert not SecretMask() and SecretMask().text("hunter22") == "hunter22"


@given(st.text(min_size=4, max_size=20), st.text(max_size=30), st.text(max_size=30))
def test_a_masked_secret_never_survives(secret: str, before: str, after: str) -> None:
    masked = SecretMask([secret]).text(before + secret + after)
    assert secret not in masked.replace(MASK, "\0")  # no piece of the mask recreates it


# ---------------------------------------------------------------- on the command line

INVENTORY = """\
[all.vars]
vault_token = "tok-GROUP-9999"

[nodes.hosts]
node2 = { api_token = "tok-SECRET-2222", db_password = "pw-SECRET-2" }

[nodes.hosts.node1]
api_token = "tok-SECRET-1111"
db_password = "pw-SECRET-1"
db = { user = "app", password = "hunter22" }
keepalive = 5
"""
SECRETS = ("tok-GROUP-9999", "tok-SECRET-1111", "tok-SECRET-2222", "hunter22", "pw-SECRET")

RECIPE = """\
[recipe]
name = "leak"
format = 1
[[step]]
id = "call"
hosts = "nodes"
run = "curl -H 'Authorization: {api_token}' -u app:{db_password} https://x/{vault_token}"
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    (tmp_path / "inv.toml").write_text(INVENTORY)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    return str(tmp_path / "inv.toml"), str(tmp_path / "recipe.toml")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def test_inventory_host_and_list_json(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _ = files
    code, out, err = apssh(capsys, "inventory", "host", "-i", inventory, "node1")
    assert code == 0
    assert_no_secret(out, err)
    assert f'db = {{"user": "app", "password": "{MASK}"}}' in out and "keepalive = 5" in out
    code, out, err = apssh(capsys, "inventory", "list", "--json", "-i", inventory)
    assert code == 0
    assert_no_secret(out, err)
    node1 = next(host for host in json.loads(out)["hosts"] if host["name"] == "node1")
    assert node1["vars"]["db"] == {"user": "app", "password": MASK}


def test_recipe_plan_text_and_json(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, recipe = files
    code, out, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory)
    assert code == 0, err
    assert_no_secret(out, err)
    assert f"node1: curl -H 'Authorization: {MASK}' -u app:{MASK} https://x/{MASK}" in out
    code, out, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "--json")
    assert code == 0, err
    assert_no_secret(out, err)
    assert MASK in out


def test_the_plan_still_runs_the_real_command(files: tuple[str, str]) -> None:
    # masking is for people and logs: what runs keeps the value
    from apssh_cli.recipe.loader import load_recipe
    from apssh_cli.recipe.planner import make_plan

    inventory, recipe = files
    plan = make_plan(load_recipe(recipe), Inventory.load([inventory]))
    task = next(task for task in plan.tasks if task.host == "node1")
    assert "tok-SECRET-1111" in task.actions[0].describe()


def test_error_messages(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    inventory, _ = files
    code, out, err = apssh(
        capsys,
        "push",
        "-i",
        inventory,
        "-g",
        "node1",
        "--dry-run",
        "/nonexistent/{api_token}",
        "/tmp/",
    )
    assert code == 1 and out == ""
    assert err == f"apssh: /nonexistent/{MASK}: no such local file\n"


def test_a_later_command_forgets_the_earlier_inventory(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _ = files
    apssh(capsys, "inventory", "list", "-i", inventory)
    # no inventory this time: nothing to mask, the text is the user's own
    code, _, err = apssh(capsys, "push", "-t", "n1", "--dry-run", "/nonexistent/hunter22", "/tmp/")
    assert code == 1 and "/nonexistent/hunter22" in err
