"""The step graph of a recipe, for people: Mermaid (renders in Markdown) and Graphviz dot.

A node per step (its id, its hosts or "local", its flags), an edge per
``requires`` (dashed for ``sync = "host"``: hosts go on one by one), and a
dotted edge from a background step to the steps it is stopped after.
"""

from __future__ import annotations

import shutil
import subprocess

from apssh_cli.errors import ConfigError
from apssh_cli.inventory.hostrange import fold
from apssh_cli.recipe.model import Recipe, Step
from apssh_cli.recipe.planner import Plan

FORMATS = ("mermaid", "dot", "svg", "png")


def _label(step: Step, plan: Plan | None) -> str:
    where = "local" if step.is_local else (step.hosts or "")
    if plan is not None and not step.is_local:
        hosts = sorted({h for inst in plan.instances_of(step.id) for h in inst.hosts})
        where = fold(hosts) if hosts else "(no host)"
    flags = [name for name in ("background", "always", "once") if getattr(step, name)]
    if not step.critical:
        flags.append("non-critical")
    if plan is not None and step.id in plan.repeating:
        flags.append(f"x{len(plan.combos)} combos")
    extra = f" [{', '.join(flags)}]" if flags else ""
    return f"{step.id}\n{where}{extra}"


def mermaid(recipe: Recipe, plan: Plan | None = None) -> str:
    """A Mermaid flowchart (paste it in a ```mermaid block)."""
    lines = ["flowchart TD"]
    for step in recipe.steps:
        text = _label(step, plan).replace('"', "'").replace("\n", "<br/>")
        shape = ('[/"', '"/]') if step.is_local else ('["', '"]')
        lines.append(f"    {_node_id(step.id)}{shape[0]}{text}{shape[1]}")
    for step in recipe.steps:
        arrow = "-.->" if step.sync == "host" else "-->"
        for required in step.requires:
            lines.append(f"    {_node_id(required)} {arrow} {_node_id(step.id)}")
        for name in step.stop_after:
            lines.append(f"    {_node_id(name)} -. stops .-> {_node_id(step.id)}")
    return "\n".join(lines) + "\n"


def dot(recipe: Recipe, plan: Plan | None = None) -> str:
    """A Graphviz digraph."""
    lines = [f'digraph "{recipe.name}" {{', "    rankdir=TB;", "    node [shape=box];"]
    for step in recipe.steps:
        text = _label(step, plan).replace('"', '\\"').replace("\n", "\\n")
        shape = ", shape=parallelogram" if step.is_local else ""
        style = ", style=dashed" if step.background else ""
        lines.append(f'    "{step.id}" [label="{text}"{shape}{style}];')
    for step in recipe.steps:
        style = " [style=dashed]" if step.sync == "host" else ""
        for required in step.requires:
            lines.append(f'    "{required}" -> "{step.id}"{style};')
        for name in step.stop_after:
            lines.append(f'    "{name}" -> "{step.id}" [style=dotted, label="stops"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_image(dot_text: str, fmt: str) -> bytes:
    """svg or png bytes from Graphviz ``dot``.

    Raises:
        ConfigError: Graphviz is not installed, or dot failed.
    """
    program = shutil.which("dot")
    if program is None:
        raise ConfigError(
            f"--format {fmt} needs Graphviz's 'dot' program, which is not installed "
            f"(apt install graphviz); --format dot or mermaid work without it"
        )
    done = subprocess.run(
        [program, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _node_id(step_id: str) -> str:
    # mermaid ids: letters, digits, _ (a step id may hold '-')
    return "s_" + step_id.replace("-", "_h_")
