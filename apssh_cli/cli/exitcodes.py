"""Exit statuses of `apssh`, as documented in --help and the README (the values: results.py)."""

from __future__ import annotations

from apssh_cli.results import ExitCode  # the one table, in the library

__all__ = ["EXIT_STATUS_HELP", "ExitCode"]


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
