"""Keepalive settings reach the nodes: the inventory's `keepalive` variable, --keepalive wins."""

from __future__ import annotations

from typing import Any

import pytest

from apssh_cli.errors import ConfigError
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import NodeSettings, Target, build_nodes

NO_SETTINGS = NodeSettings()


def _kwargs(host: Host, settings: NodeSettings = NO_SETTINGS) -> dict[str, Any]:
    made: list[dict[str, Any]] = []

    def ssh_node(hostname: str, **kwargs: Any) -> object:
        made.append(kwargs)
        return object()

    build_nodes([Target(host.name, (host,))], ssh_node=ssh_node, local_node=dict, settings=settings)
    return made[0]


def test_no_setting_leaves_the_node_default() -> None:
    assert "keepalive_interval" not in _kwargs(Host("n1", "n1"))


def test_inventory_variable_and_command_line() -> None:
    host = Host("n1", "n1", vars={"keepalive": 5})
    assert _kwargs(host)["keepalive_interval"] == 5.0
    assert _kwargs(host, NodeSettings(keepalive=0))["keepalive_interval"] == 0


@pytest.mark.parametrize("value", [-1, "fast", True, float("nan")])
def test_bad_inventory_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="keepalive must be a number"):
        _kwargs(Host("n1", "n1", vars={"keepalive": value}))
