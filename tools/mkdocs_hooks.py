"""MkDocs hooks (mkdocs.yml: ``hooks:``): README as the home page, repository files, API page.

The Markdown sources stay as they read on GitHub: ``docs/cli.md`` links ``../README.md``,
``../examples/lab_experiment.py``; the README links ``docs/cli.md``. In the site:

- the README is the home page (``index.md``), its ``docs/...`` links made relative to it;
- a file outside ``docs/`` that a page links to (a recipe, an example, the benchmark report
  and its picture) is copied into the site under ``repo/<its path>``, and the link points
  there: the site stands alone, no link leaves it;
- a link to a file that does not exist, to a directory, or out of the repository is a
  warning, which ``mkdocs build --strict`` turns into a failed build;
- ``commands.md`` is generated: what ``--help`` prints, for every command;
- ``reference.md`` is generated: one section per module of the public API (what
  ``apssh_cli`` exports, from its lazy-import table), rendered by mkdocstrings from the
  docstrings.

Links inside code (fenced blocks, inline spans) are left alone.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

try:
    from tools import manpages
except ImportError:  # loaded by MkDocs from its path, with tools/ itself on sys.path
    import manpages  # type: ignore[no-redef, import-not-found]

if TYPE_CHECKING:  # at run time only on_files needs mkdocs: the unit tests run without it
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

# under "mkdocs.": strict mode counts this logger's warnings
log = logging.getLogger("mkdocs.hooks.apssh")

REPO = Path(__file__).resolve().parents[1]
README = "README.md"
INDEX = "index.md"
REFERENCE = "reference.md"
COMMANDS = "commands.md"
HELP_WIDTH = 88  # the width `--help` is shown at on the commands page
REPO_PREFIX = "repo"  # where files from outside docs/ are served in the site

# [text](target) and ![alt](target), with an optional "title"
_INLINE_LINK = re.compile(r"(\]\()(<[^>]*>|[^)\s]+)((?:\s+\"[^\"]*\")?\))")
# [label]: target, not a footnote ([^1]: text)
_REFERENCE_LINK = re.compile(r"^( {0,3}\[(?!\^)[^\]]+\]:\s*)(\S+)", re.M)
_FENCE = re.compile(r"^([ \t]*)(```+|~~~+).*?^\1\2[ \t]*$", re.M | re.S)
# CommonMark: a run of N backticks up to the next run of exactly N (`` a ` b `` included)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", re.S)


def _docs_rel(config: MkDocsConfig) -> str:
    return Path(config.docs_dir).resolve().relative_to(REPO).as_posix()


def repo_path(src_uri: str, docs_rel: str) -> str:
    """The repository path of a site source file: ``cli.md`` -> ``docs/cli.md``."""
    if src_uri == INDEX:
        return README
    if src_uri.startswith(f"{REPO_PREFIX}/"):
        return src_uri[len(REPO_PREFIX) + 1 :]
    return f"{docs_rel}/{src_uri}"


def site_path(repo_rel: str, docs_rel: str) -> str:
    """Where a repository file is in the site: ``docs/cli.md`` -> ``cli.md``."""
    if repo_rel == README:
        return INDEX
    if repo_rel.startswith(f"{docs_rel}/"):
        return repo_rel[len(docs_rel) + 1 :]
    return f"{REPO_PREFIX}/{repo_rel}"


def _is_local(target: str) -> bool:
    return not (
        target.startswith(("#", "/", "mailto:", "data:"))
        or re.match(r"^[a-z][a-z0-9+.-]*:", target)
    )


def _outside_code(markdown: str, change: Callable[[str], str]) -> str:
    """Apply ``change`` to the text outside fenced blocks and code spans."""

    def prose(text: str) -> str:
        pieces, last = [], 0
        for span in _CODE_SPAN.finditer(text):
            pieces += [change(text[last : span.start()]), span.group(0)]
            last = span.end()
        return "".join([*pieces, change(text[last:])])

    pieces, last = [], 0
    for fence in _FENCE.finditer(markdown):
        pieces += [prose(markdown[last : fence.start()]), fence.group(0)]
        last = fence.end()
    return "".join([*pieces, prose(markdown[last:])])


def _links(markdown: str) -> Iterator[str]:
    found: list[str] = []

    def collect(text: str) -> str:
        found.extend(m.group(2).strip("<>") for m in _INLINE_LINK.finditer(text))
        found.extend(m.group(2) for m in _REFERENCE_LINK.finditer(text))
        return text

    _outside_code(markdown, collect)
    yield from found


def resolve(source_repo_rel: str, target: str) -> tuple[str | None, str]:
    """A link's target as a repository path (None if not a local file link), and its #anchor.

    Raises ValueError with the reason when the target is not a file of the repository.
    """
    path, sep, anchor = target.partition("#")
    path = path.split("?", 1)[0]
    if not _is_local(target) or not path:
        return None, sep + anchor
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(source_repo_rel), path))
    if joined == ".." or joined.startswith("../"):
        raise ValueError("points out of the repository")
    real = REPO / joined
    if real.is_dir():
        raise ValueError("is a directory: link a file in it instead")
    if not real.is_file():
        raise ValueError("no such file in the repository")
    return joined, sep + anchor


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the home page, the API page, and the repository files that pages link to."""
    from mkdocs.structure.files import File

    docs_rel = _docs_rel(config)
    if files.get_file_from_path(INDEX) is None:
        files.append(File.generated(config, INDEX, abs_src_path=str(REPO / README)))
    files.append(File.generated(config, REFERENCE, content=api_reference()))
    files.append(File.generated(config, COMMANDS, content=command_reference()))
    # the closure: a copied Markdown file (the benchmark report) may link files of its own
    pending = [repo_path(f.src_uri, docs_rel) for f in files.documentation_pages()]
    seen = set(pending)
    while pending:
        source = pending.pop()
        if not (REPO / source).is_file():
            continue  # generated (reference.md)
        for target in _links((REPO / source).read_text(encoding="utf-8")):
            try:
                repo_rel, _ = resolve(source, target)
            except ValueError:
                continue  # reported once, on the page (on_page_markdown)
            if repo_rel is None or repo_rel in seen:
                continue
            seen.add(repo_rel)
            site_rel = site_path(repo_rel, docs_rel)
            if site_rel.startswith(f"{REPO_PREFIX}/"):
                files.append(File.generated(config, site_rel, abs_src_path=str(REPO / repo_rel)))
                if repo_rel.endswith(".md"):
                    pending.append(repo_rel)
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Rewrite each local link to where its target is in the site; warn about broken ones."""
    docs_rel = _docs_rel(config)
    source = repo_path(page.file.src_uri, docs_rel)
    here = posixpath.dirname(page.file.src_uri)

    def relink(target: str) -> str:
        bare = target.strip("<>")
        try:
            repo_rel, anchor = resolve(source, bare)
        except ValueError as exc:
            log.warning("%s: link %r %s", source, bare, exc)
            return target
        if repo_rel is None:
            return target
        new = posixpath.relpath(site_path(repo_rel, docs_rel), here or ".")
        return new + anchor

    def change(text: str) -> str:
        text = _INLINE_LINK.sub(lambda m: m.group(1) + relink(m.group(2)) + m.group(3), text)
        return _REFERENCE_LINK.sub(lambda m: m.group(1) + relink(m.group(2)), text)

    return _outside_code(markdown, change)


def _public_names() -> dict[str, list[str]]:
    """The exported names, by the module of ours that exports them."""
    import apssh_cli

    lazy: dict[str, str] = apssh_cli._LAZY  # the public names and where each is defined
    by_module: dict[str, list[str]] = {}
    for name, module in lazy.items():
        by_module.setdefault(module, []).append(name)
    return by_module


def _defined_elsewhere(module: str, name: str) -> str | None:
    """The third-party module a name is re-exported from (asynciojobs' Sequence), if any."""
    value = getattr(import_module(module), name)
    origin = getattr(value, "__module__", None) or module
    return None if origin.split(".")[0] == "apssh_cli" else origin


def api_reference() -> str:
    """The API page: the exported names, grouped by the module that defines them."""
    lines = [
        "# API reference",
        "",
        "The public API is what the `apssh_cli` package exports: import every name below",
        "from it (`from apssh_cli import SshNode, SshJob, Scheduler`), not from the module",
        "that defines it. Generated from the docstrings; [the library guide](library.md)",
        "shows how the pieces fit.",
        "",
    ]
    reexported: list[str] = []
    for module, names in sorted(_public_names().items()):
        ours = []
        for name in sorted(names):
            origin = _defined_elsewhere(module, name)
            if origin is None:
                ours.append(name)
            else:
                reexported.append(f"- `{name}`: `{origin}.{name}`, exported as is.")
        lines += [f"::: {module}", "    options:", f"      members: [{', '.join(ours)}]", ""]
    if reexported:
        lines += ["## Re-exported", "", *reexported, ""]
    return "\n".join(lines)


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Warn when an exported name of ours has no entry in the API page (griffe missed it)."""
    if page.file.src_uri == REFERENCE:
        for module, names in _public_names().items():
            for name in names:
                documented = f'id="{module}.{name}"' in html
                if not documented and _defined_elsewhere(module, name) is None:
                    log.warning("%s: %s.%s is exported but not documented", REFERENCE, module, name)
    return html


def command_reference() -> str:
    """The commands page: every command's `--help`, as the command line prints it."""
    import click

    from apssh_cli.cli.main import cli

    lines = [
        "# Command reference",
        "",
        "What `--help` prints, for `apssh` and each of its subcommands; the man pages",
        "(`nox -s docs` writes them into `build/man/`: `man -l build/man/apssh-run.1`) say",
        "the same. [The command line](cli.md) explains the options at more length.",
        "",
    ]
    for page in manpages.walk(cli):
        formatter = click.HelpFormatter(width=HELP_WIDTH)
        page.command.format_help(page.ctx, formatter)
        lines += [f"## {page.title}", "", "```text", formatter.getvalue().rstrip(), "```", ""]
    return "\n".join(lines)
