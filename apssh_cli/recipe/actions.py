"""A task's actions as the library's commands (Run, RunScript, ...) and their digest.

The digest covers what ``--resume`` compares: the kind, the rendered texts, args
and destinations, and the content of the script and pushed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apssh_cli.errors import ApsshError
from apssh_cli.recipe.planner import RenderedAction, Task
from apssh_cli.recipe.template import Parts

# the actions whose text a shell reads: values from hosts are quoted there
SHELL_TEXTS = frozenset({"run", "local", "string"})


def build_commands(
    task: Task, final: Callable[[Parts, bool], str], run_dir: Path
) -> tuple[list[Any], str]:
    """The task's commands and their digest.

    Args:
        task: the planned task.
        final: renders a template's deferred references (captures, host lists);
            its second argument says whether the text is shell code.
        run_dir: where local steps run.

    Raises:
        ApsshError: a deferred reference without a value, or a NUL byte.
    """
    exits = [code for code in task.step.ok_exits if code != 0]
    commands: list[Any] = []
    digest = hashlib.sha256()
    for action in task.actions:
        shell = action.kind in SHELL_TEXTS
        # an argument is quoted whole, a path read by no shell: both take values as they are
        texts = [final(part, shell) for part in action.text]
        args = [final(arg, False) for arg in action.args]
        to = final(action.to, False) if action.to is not None else None
        if any("\0" in text for text in (*texts, *args, to or "")):
            raise ApsshError(f"{action.kind}: a NUL byte, which no command can carry")
        digest.update(json.dumps([action.kind, texts, args, to]).encode())
        commands.append(_command(action, texts, args, to, exits, digest, run_dir))
    return commands, digest.hexdigest()


def _command(
    action: RenderedAction,
    texts: list[str],
    args: list[str],
    to: str | None,
    exits: list[Any],
    digest: Any,
    run_dir: Path,
) -> Any:
    from apssh_cli.commands import Pull, Push, Run, RunScript, RunString

    kind = action.kind
    if kind == "run":
        return Run(texts[0], allowed_exits=exits)
    if kind == "local":
        command = f"cd {shlex.quote(str(run_dir))} && {texts[0]}"
        return Run(command, allowed_exits=exits, label=texts[0])
    if kind == "script":
        _hash_files(digest, [Path(texts[0])])
        # each TOML argument stays one argument, whatever it holds
        return RunScript.quoted(texts[0], *args, allowed_exits=exits)
    if kind == "string":
        return RunString.quoted(texts[0], *args, allowed_exits=exits)
    assert to is not None
    if kind == "push":
        _hash_files(digest, [Path(text) for text in texts])
        return Push(texts, to, recurse=True)
    return Pull(texts, to, recurse=True)


def _hash_files(digest: Any, paths: list[Path]) -> None:
    """Add file contents (directories walked, in order) to a digest."""
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for item in files:
            digest.update(str(item).encode())
            with contextlib.suppress(OSError):
                digest.update(item.read_bytes())
