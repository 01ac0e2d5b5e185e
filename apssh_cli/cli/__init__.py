"""The `apssh` command: click commands on top of the library (never the reverse).

May import: everything in the package; nothing outside ``apssh_cli.cli`` imports it.
"""
