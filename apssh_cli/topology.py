"""Draw which node is reached through which gateway, for a scheduler's jobs.

Upstream apssh's ``topology_dot``, ``topology_graph``, ``topology_as_dotfile``
and ``topology_as_pngfile``: one box per node (``user@host``), an arrow from
each gateway to the nodes behind it, and "Local Node" at the root.

Graphviz is optional: the DOT text and file need nothing; the PNG needs the
``dot`` program and ``topology_graph`` the ``graphviz`` Python package, and
each says so plainly when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from apssh_cli.engine.closing import scheduler_nodes
from apssh_cli.errors import ConfigError
from apssh_cli.ssh.node import SshNode

__all__ = ["topology_as_dotfile", "topology_as_pngfile", "topology_dot", "topology_graph"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def topology_dot(scheduler: Any) -> str:
    """The scheduler's nodes and gateways as a DOT digraph (text)."""
    nodes = sorted(scheduler_nodes(scheduler), key=lambda node: (node.distance(), node.label))
    index = {id(node): number for number, node in enumerate(nodes, 1)}
    lines = [
        "digraph apssh {",
        '  0 [style="rounded", shape="box", label="Local Node"];',
    ]
    for node in nodes:
        lines.append(
            f'  {index[id(node)]} [style="rounded", shape="box", label={_quote(node.user_host())}];'
        )
    for node in nodes:
        gateway: SshNode | None = node.gateway
        upstream = index[id(gateway)] if gateway is not None else 0
        lines.append(f"  {upstream} -> {index[id(node)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def topology_as_dotfile(scheduler: Any, filename: str | Path) -> str:
    """Write :func:`topology_dot` to ``filename``; return a one-line message."""
    Path(filename).write_text(topology_dot(scheduler), encoding="utf-8")
    return f"(Over)wrote {filename}"


def topology_as_pngfile(scheduler: Any, filename: str | Path) -> str:
    """Write ``filename.dot``, render ``filename.png`` with Graphviz; return the PNG file name.

    Raises:
        ConfigError: Graphviz's ``dot`` program is not installed, or failed.
    """
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "topology_as_pngfile needs Graphviz's 'dot' program, which is not installed "
            "(Debian: apt-get install graphviz); topology_as_dotfile needs nothing"
        )
    dotfile, pngfile = f"{filename}.dot", f"{filename}.png"
    topology_as_dotfile(scheduler, dotfile)
    done = subprocess.run(
        [dot, "-Tpng", dotfile, "-o", pngfile], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"dot failed on {dotfile}: {done.stderr.strip() or done.returncode}")
    return pngfile


def topology_graph(scheduler: Any) -> Any:
    """A ``graphviz.Source`` of :func:`topology_dot` (shows as a picture in Jupyter).

    Raises:
        ConfigError: the ``graphviz`` Python package is not installed.
    """
    try:
        from graphviz import Source  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "topology_graph needs the 'graphviz' Python package (pip install graphviz) "
            "and Graphviz itself; topology_dot gives the same graph as text"
        ) from None
    return Source(topology_dot(scheduler))
