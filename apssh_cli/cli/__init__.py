"""The `apssh` command: click commands on top of the library (never the reverse)."""
