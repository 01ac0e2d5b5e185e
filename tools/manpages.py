"""Man pages for `apssh` and each of its subcommands, generated from the click commands.

Usage: ``python tools/manpages.py OUTDIR`` (run by ``nox -s docs``): writes ``OUTDIR/apssh.1``,
``OUTDIR/apssh-run.1``, ``OUTDIR/apssh-inventory-list.1``, ... one page per command, groups
included. Read one with ``man -l OUTDIR/apssh-run.1``.

Why a generator of our own rather than click-man: click-man finds the commands through the
console_scripts entry points and renders click's help text as plain paragraphs, so our
``\\b`` blocks (the examples, the exit status table) lose their lines, and it has no EXAMPLES
or EXIT STATUS section. Walking the click group through click's public API
(``Group.list_commands``/``get_command``, ``Command.collect_usage_pieces``,
``Parameter.get_help_record``) and writing roff is about as short, and lints clean
(``groff -man -ww``).

The help text conventions read here are the ones `apssh ... --help` shows: paragraphs
separated by blank lines; a paragraph starting with ``\\b`` keeps its lines; a ``\\b``
paragraph whose first line is ``Examples:`` or starts with ``Exit status`` becomes the
EXAMPLES or EXIT STATUS section.
"""

from __future__ import annotations

import datetime
import inspect
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

PROGRAM = "apssh"
NO_WRAP = "\b"  # click's marker: the paragraph after it keeps its line breaks
SOURCE_WIDTH = 80  # roff source lines, as `mandoc -T lint` wants them


@dataclass(frozen=True)
class Page:
    """One command to document: its words (``("inventory", "list")``), command and context."""

    words: tuple[str, ...]
    command: click.Command
    ctx: click.Context

    @property
    def name(self) -> str:
        """The page's name, ``apssh-inventory-list``."""
        return "-".join((PROGRAM, *self.words))

    @property
    def title(self) -> str:
        """As typed, ``apssh inventory list``."""
        return " ".join((PROGRAM, *self.words))


def walk(
    root: click.Command, words: tuple[str, ...] = (), parent: click.Context | None = None
) -> Iterator[Page]:
    """Every command under ``root`` (itself first), depth first, in listing order."""
    info_name = words[-1] if words else PROGRAM
    # the command's context_settings (help_option_names: -h) as click's make_context applies them
    ctx = click.Context(root, info_name=info_name, parent=parent, **root.context_settings)
    yield Page(words, root, ctx)
    if isinstance(root, click.Group):
        for name in root.list_commands(ctx):
            sub = root.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, (*words, name), ctx)


def escape(text: str) -> str:
    r"""Text made safe for roff: backslashes, hyphens of options, and leading . or '.

    >>> escape("apssh -g nodes")
    'apssh \\-g nodes'
    >>> escape(".lab/inventory.toml")
    '\\&.lab/inventory.toml'
    """
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def inline(text: str) -> str:
    r"""Escaped text with Markdown-style `code` spans in bold, as man pages show commands.

    >>> inline("see `apssh run`")
    'see \\fBapssh run\\fR'
    """
    return re.sub(r"`([^`]+)`", lambda m: f"\\fB{m.group(1)}\\fR", escape(text))


def filled(text: str) -> list[str]:
    r"""Escaped roff text in source lines of at most 80 bytes (the output is filled anyway).

    >>> filled("x" * 79 + " .lab/inventory.toml")[-1]
    '\\&.lab/inventory.toml'
    """
    lines = textwrap.wrap(text, SOURCE_WIDTH, break_long_words=False, break_on_hyphens=False) or [
        "\\&"
    ]
    # a line that starts with . or ' would be a request: wrapping may make one
    return [f"\\&{line}" if line.startswith((".", "'")) else line for line in lines]


def paragraphs(help_text: str) -> list[str]:
    """The help text's paragraphs (before click's ``\\f`` cut-off), verbatim ones marked."""
    # click keeps a docstring's indentation (it dedents when formatting the help)
    text = inspect.cleandoc(help_text.split("\f", 1)[0])
    return [block.strip("\n") for block in re.split(r"\n\s*\n", text) if block.strip()]


def _verbatim_lines(block: str) -> list[str]:
    lines = block.split("\n")[1:]  # after the \b line
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return [line[indent:] for line in lines]


def _section_of(block: str) -> str | None:
    # a \b block headed "Examples:" or "Exit status...:" is a man page section of its own
    if not block.startswith(NO_WRAP):
        return None
    lines = _verbatim_lines(block)
    first = lines[0].strip() if lines else ""
    if first == "Examples:":
        return "EXAMPLES"
    if first.startswith("Exit status") and first.endswith(":"):
        return "EXIT STATUS"
    return None


def roff_block(block: str) -> list[str]:
    """One help paragraph as roff: filled text, or kept lines for a ``\\b`` paragraph."""
    if block.startswith(NO_WRAP):
        return [".PP", ".nf", *(escape(line) for line in _verbatim_lines(block)), ".fi"]
    return [".PP", *filled(inline(" ".join(block.split())))]


def _section_body(block: str) -> list[str]:
    # the heading line is the section's title: drop it, keep the lines (indented as in --help)
    lines = _verbatim_lines(block)[1:]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    kept = [escape(line[indent:]) for line in lines]
    return [".nf", *kept, ".fi"]


def _synopsis(page: Page) -> list[str]:
    pieces = page.command.collect_usage_pieces(page.ctx)
    return [".SH SYNOPSIS", f".B {escape(page.title)}", escape(" ".join(pieces))]


def _options(page: Page) -> list[str]:
    out: list[str] = []
    for param in page.command.get_params(page.ctx):
        # arguments are in the synopsis; click >= 8.3 gives them help records too
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(page.ctx)
        if record is None:
            continue
        names, help_text = record
        out += [".TP", f"\\fB{escape(names)}\\fR", *filled(inline(" ".join(help_text.split())))]
    return [".SH OPTIONS", *out] if out else []


def _commands(page: Page, pages: dict[tuple[str, ...], Page]) -> list[str]:
    if not isinstance(page.command, click.Group):
        return []
    out = [".SH COMMANDS"]
    for words, sub in pages.items():
        if len(words) == len(page.words) + 1 and words[: len(page.words)] == page.words:
            out += [
                ".TP",
                f"\\fB{escape(words[-1])}\\fR",
                *filled(inline(sub.command.get_short_help_str(limit=200))),
                f"See \\fB{escape(sub.name)}\\fR(1).",
            ]
    return out


def render(page: Page, pages: dict[tuple[str, ...], Page], date: str, version: str) -> str:
    """The roff source of one page."""
    command = page.command
    blocks = paragraphs(command.help or "")
    if command.epilog:
        blocks += paragraphs(command.epilog)
    description: list[str] = []
    sections: dict[str, list[str]] = {}
    for block in blocks:
        section = _section_of(block)
        if section is None:
            description += roff_block(block)
        else:
            sections.setdefault(section, []).extend(_section_body(block))
    summary = command.get_short_help_str(limit=200)
    lines = [
        f'.TH {escape(page.name.upper())} 1 "{date}" "apssh-cli {escape(version)}" "User Commands"',
        ".nh",  # no hyphenation: option names and variables stay whole
        ".ad l",  # ragged right: no stretched spaces around long words
        ".SH NAME",
        *filled(f"{escape(page.name)} \\- {inline(summary)}"),
        *_synopsis(page),
        ".SH DESCRIPTION",
        # the first paragraph follows .SH without a .PP (mandoc: "skipping paragraph macro")
        *(description or [".PP", *filled(inline(summary))])[1:],
        *_options(page),
        *_commands(page, pages),
    ]
    for section in ("EXAMPLES", "EXIT STATUS"):
        if section in sections:
            lines += [f'.SH "{section}"', *sections[section]]
    related = [other.name for other in pages.values() if _related(page, other)]
    if related:
        lines += ['.SH "SEE ALSO"', ",\n".join(f"\\fB{escape(name)}\\fR(1)" for name in related)]
    return "\n".join(lines) + "\n"


def _related(page: Page, other: Page) -> bool:
    # the parent, the children, and the top page from everywhere
    if other is page:
        return False
    is_parent = bool(page.words) and other.words == page.words[:-1]
    is_child = bool(other.words) and other.words[:-1] == page.words
    return is_parent or is_child or not other.words


def build_date() -> str:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else today (UTC)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
        if epoch
        else datetime.datetime.now(tz=datetime.UTC)
    )
    return moment.strftime("%Y-%m-%d")


def write_pages(out_dir: Path, root: click.Command | None = None) -> list[Path]:
    """Write one page per command of ``root`` (default: the `apssh` group); return their paths."""
    from apssh_cli import __version__
    from apssh_cli.cli.main import cli

    pages = {page.words: page for page in walk(root or cli)}
    out_dir.mkdir(parents=True, exist_ok=True)
    date = build_date()
    written = []
    for page in pages.values():
        path = out_dir / f"{page.name}.1"
        path.write_text(render(page, pages, date, __version__), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/manpages.py OUTDIR", file=sys.stderr)
        return 1
    written = write_pages(Path(argv[0]))
    print(f"{len(written)} man pages in {argv[0]}: {', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
