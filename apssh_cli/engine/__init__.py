"""The engine: runs per-host work over a fleet.

Owns `SshJob` and the `Scheduler` (the only importer of asynciojobs) and the fleet
runner: the window, gateway sharing, connection release, cancellation and each
host's outcome. The command line, recipes and library users all run work here.

May import: `ssh`, `inventory`, `commands`, `output`, `results`, `errors`. Never the CLI.
"""
