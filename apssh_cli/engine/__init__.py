"""The engine: runs per-host work over a fleet.

Owns `SshJob` and the `Scheduler` (the only importer of asynciojobs) and the fleet
runner: the window, gateway sharing, connection release, cancellation and each
host's outcome; `SshJob`'s hooks and `windows` for runners on top (recipes). The
command line, recipes and library users all run work here.

`prestart` decides what comes before asyncssh is imported: the default window and the
early TCP connects of the hosts it starts with.

May import: `ssh`, `inventory`, `commands`, `deferred`, `output`, `results`, `errors`.
Never the CLI.
"""
