"""SSH: nodes and what they do over a connection.

Owns `SshNode` (one connection, gateway chains) and `LocalNode`, connecting and its
retries and keepalives, keys, host keys, ssh_config (asyncssh's reader), the
`SshContext` that scopes what nodes share (jump nodes, known_hosts files), closing
nodes with their gateways (`teardown`), the TCP connects started before asyncssh is
imported (`early`), the remote wrapper (the remote pid, the kill of a process group,
the watcher that ends a command whose session is gone), process streaming and
pipelined SFTP transfers.
The only users of asyncssh; asyncssh and OS errors become the errors of
`apssh_cli.errors` here.

May import: asyncssh, `apssh_cli.errors`, `results`, `output`, `log`. Never the
engine, recipes, the lab or the CLI.
"""
