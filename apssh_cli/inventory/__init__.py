"""Inventories and targets: which hosts to run on, and the route to each (pure Python).

Owns the TOML inventory model (`model`; its values `Host` and `Group` in `hosts`), its
loader and host variables, host ranges
(`hostrange`), the ``-g``/``-x`` selection patterns (`selection`) and the resolution
of inventory hosts and ``-t`` specs into routed targets (`targets`).

May import: the standard library, `apssh_cli.errors`. Never asyncssh, asynciojobs,
click or another subpackage: the inventory commands and `recipe check` stay fast.
"""
