"""The import rules of docs/architecture.md, checked on the source (ast, nothing imported).

- the library never imports the command line (``apssh_cli.cli``) or click;
- asyncssh is imported only under ``apssh_cli/ssh/``; asynciojobs only by
  ``apssh_cli/engine/job.py``; docker and testcontainers only by the lab;
- ``apssh_cli/inventory/`` is pure: no SSH, engine, commands or output;
- no import circles between the subsystems (subpackages and top modules),
  lazy (function-level) imports included;
- no import circles between the modules of one subpackage either, lazy ones
  included: only imports under ``if TYPE_CHECKING:`` (never run) may point back;
- each subsystem imports only the layers below it in docs/architecture.md's graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "apssh_cli"


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports, anywhere in its body (lazy ones included)."""
    return imports_in(ast.parse(path.read_text(encoding="utf-8")), module, path)


def imports_in(tree: ast.AST, module: str, path: Path) -> set[str]:
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(module: str, path: Path) -> set[str]:
    """The modules ``module`` imports when it runs: `imports` minus ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            node.body = []  # annotations only: never imported at run time
    return imports_in(tree, module, path)


def unit(module: str) -> str:
    """The subsystem of a module: ``apssh_cli.ssh.node`` -> ``ssh``; top modules are their own."""
    if module == "apssh_cli.__main__":  # `python -m apssh_cli`: the command line's entry
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


# (dependency, module) pairs allowed against the rules: none
EXCEPTIONS: set[tuple[str, str]] = set()

ALL = {module: imports(module, path) for module, path in modules()}


def importers_of(prefix: str) -> set[str]:
    return {
        module
        for module, found in ALL.items()
        if any(name == prefix or name.startswith(prefix + ".") for name in found)
    }


def test_the_library_never_imports_the_cli_or_click() -> None:
    library = {m for m in ALL if unit(m) != "cli" and m != "apssh_cli"}
    assert not importers_of("apssh_cli.cli") & library
    assert not importers_of("click") & library


@pytest.mark.parametrize(
    ("dependency", "allowed"),
    [
        ("asyncssh", lambda m: m.startswith("apssh_cli.ssh.")),
        ("asynciojobs", lambda m: m == "apssh_cli.engine.job"),
        ("docker", lambda m: unit(m) == "lab"),
        ("testcontainers", lambda m: unit(m) == "lab"),
    ],
)
def test_each_dependency_stays_behind_one_place(dependency: str, allowed: object) -> None:
    wrong = sorted(
        m
        for m in importers_of(dependency)
        if not allowed(m) and (dependency, m) not in EXCEPTIONS  # type: ignore[operator]
    )
    assert not wrong, f"{dependency} imported by {wrong}"


def test_inventory_is_pure() -> None:
    inventory = {m for m in ALL if unit(m) == "inventory"}
    for forbidden in (
        "apssh_cli.ssh",
        "apssh_cli.engine",
        "apssh_cli.commands",
        "apssh_cli.output",
    ):
        assert not importers_of(forbidden) & inventory, forbidden


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                on_path = [*path, node]
                return [*on_path[on_path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def test_no_import_circles_between_subsystems() -> None:
    units = {unit(module) for module in ALL}
    graph: dict[str, set[str]] = {}
    for module, found in ALL.items():
        if module == "apssh_cli":  # the lazy public API re-exports everything
            continue
        source = unit(module)
        for name in found:
            target = unit(name)
            # `from apssh_cli import __version__` names an attribute, not a subsystem
            if name.startswith("apssh_cli.") and target in units and target != source:
                graph.setdefault(source, set()).add(unit(name))
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


# the layers of docs/architecture.md's graph, top first: a subsystem imports only lower ones
LAYERS = [
    {"cli"},
    {"nodes", "formatters", "service", "topology"},  # upstream apssh's names, on top
    {"recipe"},
    {"engine"},
    {"commands"},
    {"ssh", "deferred"},
    {"output", "inventory", "lab"},
    {"errors", "results", "log", "durations"},
]


def test_each_subsystem_imports_only_the_layers_below() -> None:
    layer = {name: depth for depth, names in enumerate(LAYERS) for name in names}
    ours = {unit(module) for module in ALL} - {"__init__", "__main__"}
    assert ours == set(layer), "a subsystem missing from LAYERS (and docs/architecture.md)"
    upward = sorted(
        (module, name)
        for module, found in ALL.items()
        if unit(module) in layer
        for name in found
        if name.startswith("apssh_cli.")
        and unit(name) in layer
        and unit(name) != unit(module)
        and layer[unit(name)] <= layer[unit(module)]
    )
    assert not upward, upward


@pytest.mark.parametrize("package", sorted({unit(m) for m in ALL if m.count(".") >= 2}))
def test_no_import_circles_inside_a_subpackage(package: str) -> None:
    """Modules of one subpackage import each other one way only, lazy imports included."""
    prefix = f"apssh_cli.{package}"
    members = {
        module: path
        for module, path in modules()
        if module == prefix or module.startswith(prefix + ".")
    }
    graph = {
        module: {name for name in runtime_imports(module, path) if name in members} - {module}
        for module, path in members.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_circle_check_sees_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    # the check of the test above, on two made-up modules: a lazy import back is a circle,
    # an import under `if TYPE_CHECKING:` is not
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("from pkg.sub import second\n")
    second.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.sub.first import X\n"
        "def later():\n    from pkg.sub import first\n"
    )
    found = {
        name: runtime_imports(f"pkg.sub.{name}", path)
        for name, path in (("first", first), ("second", second))
    }
    assert "pkg.sub.first" in found["second"]  # the lazy one
    graph = {
        f"pkg.sub.{name}": {m for m in names if m in {"pkg.sub.first", "pkg.sub.second"}}
        for name, names in found.items()
    }
    assert find_cycle(graph) == ["pkg.sub.first", "pkg.sub.second", "pkg.sub.first"]
    second.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import first\n"
    )
    assert "pkg.sub.first" not in runtime_imports("pkg.sub.second", second)
