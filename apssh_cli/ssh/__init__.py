"""SSH: nodes and what they do over a connection.

Owns `SshNode` (one connection, gateway chains) and `LocalNode`, connecting and its
retries, keys, host keys, ssh_config, the remote wrapper (the remote pid and the
kill of a process group), process streaming and SFTP transfers. The only users of
asyncssh; asyncssh and OS errors become the errors of `apssh_cli.errors` here.

May import: asyncssh, `apssh_cli.errors`, `results`, `output`, `log`. Never the
engine, recipes, the lab or the CLI.
"""
