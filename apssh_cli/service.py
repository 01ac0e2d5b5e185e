"""Service: start and stop a long-running program on a node with systemd-run.

Upstream apssh's helper for programs that an experiment starts, leaves
running while other jobs go on, then stops (a tcpdump, a netcat server...).
Each method returns a :class:`~apssh_cli.commands.Run` to put in an SshJob;
the node needs systemd (``systemd-run``, ``systemctl``, ``journalctl``).

Example::

    capture = Service("tcpdump -i eth0 -w /tmp/trace.pcap", service_id="tcpdump")
    SshJob(node, capture.start_command(), scheduler=scheduler)
    ...
    SshJob(node, capture.stop_command(), scheduler=scheduler, required=measure)

The command may be a :class:`~apssh_cli.deferred.Deferred`: the start
command is then rendered when it runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from apssh_cli.commands import Run
from apssh_cli.deferred import Deferred

__all__ = ["Service"]

_QUIET = ">/dev/null 2>&1"


class Service:
    """A program run as a transient systemd unit on a node.

    Args:
        command: the program and its arguments (a shell string; a Deferred works).
        service_id: the unit's name; unique on the node.
        tty: give the program a pseudo-terminal (``systemd-run --pty``).
        systemd_type: the unit's ``Type=`` (``simple``: the program stays in
            the foreground; ``forking`` if it daemonises itself).
        environ: variables for the program (systemd gives it almost none).
        stop_if_running: the start command first stops a unit of the same name
            and clears its failed state (an earlier run that was not stopped).
        verbose: the start command's label shows the whole command.
    """

    def __init__(
        self,
        command: str | Deferred,
        *,
        service_id: str,
        tty: bool = False,
        systemd_type: str = "simple",
        environ: Mapping[str, object] | None = None,
        stop_if_running: bool = True,
        verbose: bool = False,
    ) -> None:
        if not service_id or any(char.isspace() or char in "/'\"" for char in service_id):
            raise ValueError(f"service_id must be a plain unit name, not {service_id!r}")
        self.command = command
        self.service_id = service_id
        self.tty = tty
        self.systemd_type = systemd_type
        self.environ = dict(environ or {})
        self.stop_if_running = stop_if_running
        self.verbose = verbose

    def _systemctl(self, action: str, *, quiet: bool = False) -> str:
        line = f"systemctl {action} {shlex.quote(self.service_id)}"
        return f"{line} {_QUIET}" if quiet else line

    def start_text(self) -> str | Deferred:
        """The shell text of the start command (a Deferred when the command is one)."""
        steps = []
        if self.stop_if_running:
            # an earlier run that is still there: stop it, forget its failure
            steps.append(
                f"{{ ! {self._systemctl('is-active --quiet')} || {self._systemctl('stop')}; }}"
            )
            steps.append(f"{{ {self._systemctl('reset-failed', quiet=True)} || true; }}")
        options = [f"--unit={shlex.quote(self.service_id)}"]
        options.append(f"--service-type={shlex.quote(self.systemd_type)}")
        if self.tty:
            options.append("--pty")
        options += [
            f"--setenv={shlex.quote(f'{name}={value}')}" for name, value in self.environ.items()
        ]
        template = self.command.template if isinstance(self.command, Deferred) else self.command
        steps.append(f"systemd-run {' '.join(options)} {template}")
        text = " && ".join(steps)
        if isinstance(self.command, Deferred):
            return self.command.dup_from_string(text)
        return text

    def _label(self, action: str, given: str | None) -> str:
        if given is not None:
            return given
        if action == "start" and self.verbose:
            return f"Service {self.service_id}: start {self.command}"
        return f"Service {self.service_id}: {action}"

    def start_command(self, *, label: str | None = None, **kwds: Any) -> Run:
        """A Run that starts the service (keywords as for Run)."""
        return Run(self.start_text(), label=self._label("start", label), **kwds)

    def stop_command(self, *, label: str | None = None, **kwds: Any) -> Run:
        """A Run that stops the service."""
        return Run(self._systemctl("stop"), label=self._label("stop", label), **kwds)

    def status_command(
        self, *, output: str | None = None, label: str | None = None, **kwds: Any
    ) -> Run:
        """A Run that shows ``systemctl status`` (into the file ``output`` if given).

        ``systemctl status`` exits 3 for a stopped unit: pass ``allowed_exits=[3]``
        to accept that.
        """
        line = self._systemctl("status")
        if output:
            line += f" > {shlex.quote(output)}"
        return Run(line, label=self._label("status", label), **kwds)

    def journal_command(
        self, *, since: str | None = None, label: str | None = None, **kwds: Any
    ) -> Run:
        """A Run that prints the service's journal (``since``: e.g. ``"10 seconds ago"``)."""
        line = f"journalctl --unit {shlex.quote(self.service_id)}"
        if since:
            line += f" --since {shlex.quote(since)}"
        return Run(line, label=self._label("journal", label), **kwds)
