"""Exit statuses of `apssh`: one table, documented in --help and the README."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What `apssh` returns; when several apply, the most severe (highest) wins, 130 aside."""

    OK = 0  # every host succeeded
    USAGE = 1  # usage, inventory or local error: nothing was run
    REMOTE_FAILED = 2  # some host returned non-zero
    TIMEOUT = 3  # some host timed out
    UNREACHABLE = 4  # some host unreachable, or refused (auth, host key)
    # `apssh recipe run` only: the library's apssh_cli.recipe.state.EXIT_ABORTED (the
    # library never imports cli/, so the value is written twice; a unit test ties them)
    RECIPE_ABORTED = 5  # a critical step failed, or the recipe's timeout
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`apssh ... | head`)


EXIT_STATUS_HELP = """\b
Exit status:
  0    every host succeeded
  1    usage, inventory or local error: nothing was run
  2    some host returned non-zero
  3    some host timed out
  4    some host was unreachable or refused (authentication, host key)
  5    recipe run aborted: a critical step failed, or the recipe's timeout
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (apssh ... | head): 128 + SIGPIPE
  128+N  stopped by signal N (143: SIGTERM, 129: SIGHUP), handled like Ctrl-C
The most severe status present wins (130 > 5 > 4 > 3 > 2)."""
