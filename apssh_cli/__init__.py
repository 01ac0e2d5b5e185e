"""apssh-cli: run commands, scripts and file transfers on many nodes over SSH.

The public API is what this module exports. Heavy dependencies (asyncssh,
asynciojobs) are imported lazily, on first use of a name that needs them, so
that `apssh --help` and the inventory commands stay fast.
"""

from __future__ import annotations

from importlib import import_module

# not typing's: importing typing costs every `apssh` start ~10 ms (cli/launch.py)
TYPE_CHECKING = False
if TYPE_CHECKING:  # type checkers see the real names; at run time they load lazily
    from typing import Any

    from apssh_cli.commands import (
        Command as Command,
        Pull as Pull,
        Push as Push,
        Run as Run,
        RunScript as RunScript,
        RunString as RunString,
    )
    from apssh_cli.deferred import (
        Capture as Capture,
        Deferred as Deferred,
        Variables as Variables,
    )
    from apssh_cli.engine.closing import (
        close_ssh_in_scheduler as close_ssh_in_scheduler,
        co_close_ssh_in_scheduler as co_close_ssh_in_scheduler,
    )
    from apssh_cli.engine.fleet import (
        FleetNodes as FleetNodes,
        FleetOptions as FleetOptions,
        FleetRun as FleetRun,
        run_fleet as run_fleet,
    )
    from apssh_cli.engine.job import (
        Scheduler as Scheduler,
        Sequence as Sequence,
        SshJob as SshJob,
    )
    from apssh_cli.engine.outcomes import (
        FleetResults as FleetResults,
        co_run_command as co_run_command,
        run_command as run_command,
    )
    from apssh_cli.errors import (
        ApsshError as ApsshError,
        AuthRefusedError as AuthRefusedError,
        CommandError as CommandError,
        CommandFailedError as CommandFailedError,
        CommandTimeoutError as CommandTimeoutError,
        ConfigError as ConfigError,
        ConnectError as ConnectError,
        HostError as HostError,
        HostKeyRefusedError as HostKeyRefusedError,
        HostRangeError as HostRangeError,
        InventoryError as InventoryError,
        SelectionError as SelectionError,
        UnreachableError as UnreachableError,
    )
    from apssh_cli.inventory.model import (
        Group as Group,
        Host as Host,
        Inventory as Inventory,
    )
    from apssh_cli.inventory.targets import Target as Target
    from apssh_cli.nodes import nodes_from_inventory as nodes_from_inventory
    from apssh_cli.output import (
        CaptureFormatter as CaptureFormatter,
        ColonFormatter as ColonFormatter,
        Formatter as Formatter,
        HostFormatter as HostFormatter,
        OutputEvent as OutputEvent,
        RawFormatter as RawFormatter,
        SubdirFormatter as SubdirFormatter,
        TeeFormatter as TeeFormatter,
        TerminalFormatter as TerminalFormatter,
        TimeColonFormatter as TimeColonFormatter,
        TimeHostFormatter as TimeHostFormatter,
        VerboseFormatter as VerboseFormatter,
    )
    from apssh_cli.recipe import (
        RecipeError as RecipeError,
        RecipeRun as RecipeRun,
        load_recipe as load_recipe,
        make_plan as make_plan,
    )
    from apssh_cli.results import (
        CommandResult as CommandResult,
        HostResult as HostResult,
        Status as Status,
    )
    from apssh_cli.service import Service as Service
    from apssh_cli.ssh.keyload import (
        import_private_key as import_private_key,
        load_agent_keys as load_agent_keys,
        load_private_keys as load_private_keys,
    )
    from apssh_cli.ssh.node import (
        LocalNode as LocalNode,
        SshNode as SshNode,
        SshProxy as SshProxy,
    )
    from apssh_cli.ssh.teardown import close_nodes as close_nodes
    from apssh_cli.topology import (
        topology_as_dotfile as topology_as_dotfile,
        topology_as_pngfile as topology_as_pngfile,
        topology_dot as topology_dot,
        topology_graph as topology_graph,
    )

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY: dict[str, str] = {
    "ApsshError": "apssh_cli.errors",
    "ConfigError": "apssh_cli.errors",
    "InventoryError": "apssh_cli.errors",
    "HostRangeError": "apssh_cli.errors",
    "SelectionError": "apssh_cli.errors",
    "HostError": "apssh_cli.errors",
    "ConnectError": "apssh_cli.errors",
    "UnreachableError": "apssh_cli.errors",
    "AuthRefusedError": "apssh_cli.errors",
    "HostKeyRefusedError": "apssh_cli.errors",
    "CommandError": "apssh_cli.errors",
    "CommandFailedError": "apssh_cli.errors",
    "CommandTimeoutError": "apssh_cli.errors",
    "Status": "apssh_cli.results",
    "HostResult": "apssh_cli.results",
    # the SSH job library
    "CommandResult": "apssh_cli.results",
    "SshNode": "apssh_cli.ssh.node",
    "SshProxy": "apssh_cli.ssh.node",
    "LocalNode": "apssh_cli.ssh.node",
    "close_nodes": "apssh_cli.ssh.teardown",
    "nodes_from_inventory": "apssh_cli.nodes",
    "SshJob": "apssh_cli.engine.job",
    "Scheduler": "apssh_cli.engine.job",
    "Sequence": "apssh_cli.engine.job",
    "Command": "apssh_cli.commands",
    "Run": "apssh_cli.commands",
    "RunScript": "apssh_cli.commands",
    "RunString": "apssh_cli.commands",
    "Push": "apssh_cli.commands",
    "Pull": "apssh_cli.commands",
    # upstream apssh's nepi-ng helpers (names and behaviour as upstream)
    "Capture": "apssh_cli.deferred",
    "Deferred": "apssh_cli.deferred",
    "Variables": "apssh_cli.deferred",
    "Service": "apssh_cli.service",
    "close_ssh_in_scheduler": "apssh_cli.engine.closing",
    "co_close_ssh_in_scheduler": "apssh_cli.engine.closing",
    "topology_as_dotfile": "apssh_cli.topology",
    "topology_as_pngfile": "apssh_cli.topology",
    "topology_dot": "apssh_cli.topology",
    "topology_graph": "apssh_cli.topology",
    "import_private_key": "apssh_cli.ssh.keyload",
    "load_agent_keys": "apssh_cli.ssh.keyload",
    "load_private_keys": "apssh_cli.ssh.keyload",
    "Formatter": "apssh_cli.output",
    "HostFormatter": "apssh_cli.output",
    "RawFormatter": "apssh_cli.output",
    "TimeHostFormatter": "apssh_cli.output",
    "SubdirFormatter": "apssh_cli.output",
    "CaptureFormatter": "apssh_cli.output",
    "ColonFormatter": "apssh_cli.output",
    "TerminalFormatter": "apssh_cli.output",
    "TimeColonFormatter": "apssh_cli.output",
    "VerboseFormatter": "apssh_cli.output",
    "TeeFormatter": "apssh_cli.output",
    "OutputEvent": "apssh_cli.output",
    # the fleet engine: many hosts, a window, connections released as hosts finish
    "FleetNodes": "apssh_cli.engine.fleet",
    "FleetOptions": "apssh_cli.engine.fleet",
    "FleetRun": "apssh_cli.engine.fleet",
    "run_fleet": "apssh_cli.engine.fleet",
    # results as data: one call, each host's outcome, stdout and stderr (bounded)
    "run_command": "apssh_cli.engine.outcomes",
    "co_run_command": "apssh_cli.engine.outcomes",
    "FleetResults": "apssh_cli.engine.outcomes",
    "Target": "apssh_cli.inventory.targets",
    # recipes (a run imports asyncssh; loading and planning do not)
    "load_recipe": "apssh_cli.recipe.loader",
    "make_plan": "apssh_cli.recipe.planner",
    "RecipeRun": "apssh_cli.recipe.runner",
    "RecipeError": "apssh_cli.recipe.model",
    # inventories (pure: no SSH import)
    "Inventory": "apssh_cli.inventory.model",
    "Host": "apssh_cli.inventory.model",
    "Group": "apssh_cli.inventory.model",
}

__all__ = sorted(["__version__", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'apssh_cli' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
