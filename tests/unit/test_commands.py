"""Commands: joining and quoting, allowed exits, captures, Run/RunScript/RunString locally."""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import pytest

from apssh_cli.commands import Pull, Push, Run, RunScript, RunString, parse_allowed_exits
from apssh_cli.deferred import Capture, Deferred, Variables
from apssh_cli.errors import CommandTimeoutError, ConfigError
from apssh_cli.output import CaptureFormatter, Formatter
from apssh_cli.results import CommandResult
from apssh_cli.ssh.node import LocalNode

from .processes import dies


class FakeNode:
    """Records what a command asks of its node."""

    def __init__(self) -> None:
        self.label = "fake"
        self.formatter: Formatter = CaptureFormatter()
        self.verbose = False
        self.shell: list[str] = []
        self.extras: list[dict[str, object]] = []
        self.installed: list[list[tuple[str, bytes | Path, int]]] = []
        self.removed: list[str] = []

    async def connect(self) -> None:
        pass

    async def run_shell(
        self,
        command: str,
        *,
        display: str,
        timeout: float | None = None,
        verbose: bool = False,
        **extra: object,
    ) -> CommandResult:
        self.shell.append(command)
        self.extras.append(extra)
        return CommandResult(display, 0)

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str:
        self.installed.append(list(files))
        return "/tmp/apssh-x y"

    async def remove_private_dir(self, path: str) -> None:
        self.removed.append(path)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class JumpingClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test moves forward at will: deadlines without waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset


def jump(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, JumpingClockLoop)
    loop.offset += seconds


def run_with_clock(coro):  # type: ignore[no-untyped-def]
    with asyncio.Runner(loop_factory=JumpingClockLoop) as runner:
        return runner.run(coro)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([], set()),
        ([1, 2], {1, 2}),
        (["3"], {3}),
        (["TERM"], {-15, 143}),
        (["SIGKILL", "hup"], {-9, 137, -1, 129}),
    ],
)
def test_allowed_exits(spec: list[int | str], expected: set[int]) -> None:
    assert parse_allowed_exits(spec) == expected


@pytest.mark.parametrize("bad", ["NOPE", 256, -1, True])
def test_allowed_exits_rejects(bad: int | str) -> None:
    with pytest.raises(ConfigError):
        parse_allowed_exits([bad])


def test_is_allowed() -> None:
    command = Run("false", allowed_exits=[1, "TERM"])
    assert command.is_allowed(0)
    assert command.is_allowed(1)
    assert command.is_allowed(-15)
    assert not command.is_allowed(2)
    assert not Run("true").is_allowed(1)


@pytest.mark.parametrize(
    ("argv", "joined", "quoted"),
    [
        (("ls -l /tmp | wc -l",), "ls -l /tmp | wc -l", "'ls -l /tmp | wc -l'"),
        (("tail -n", 1, "/etc/hosts"), "tail -n 1 /etc/hosts", "'tail -n' 1 /etc/hosts"),
        (("touch", "a file"), "touch a file", "touch 'a file'"),
        (("echo", "$HOME", "it's"), "echo $HOME it's", "echo '$HOME' 'it'\"'\"'s'"),
        (("sleep", 3), "sleep 3", "sleep 3"),
    ],
)
def test_run_joins_parts_and_quoted_quotes_them(
    argv: tuple[str, ...], joined: str, quoted: str
) -> None:
    assert Run(*argv).command_line == joined  # upstream: parts joined with spaces
    assert Run(*argv).describe() == joined
    assert str(Run(*argv)) == joined
    assert Run.quoted(*argv).command_line == quoted
    assert Run(*argv, label="shown").describe() == "shown"


def test_labels_falsy_hidden_and_defaults_as_upstream() -> None:
    hidden = Run("secret", label="")
    assert hidden.label_line() == ""  # not drawn in graphs
    assert hidden.describe() == "secret"  # still named in messages
    assert Run("x", allowed_exits=None).allowed_exits == ()
    assert RunString("true", includes=None).includes == ()


def test_a_run_or_a_deferred_stands_for_a_string() -> None:
    env = Variables()
    inner = Run("echo", Deferred("{{who}}", env))
    outer = Run(inner)  # upstream: Run(service.start_command())
    assert outer.command_line == "echo {{ who }}"  # unknown yet: shown as a template
    env.who = "world"
    assert outer.command_line == "echo world"


def test_run_needs_a_command() -> None:
    with pytest.raises(ValueError):
        Run()


def test_run_string_installs_runs_from_private_dir_and_cleans(tmp_path: Path) -> None:
    include = tmp_path / "lib.sh"
    include.write_text("x=1\n")
    node = FakeNode()
    command = RunString("echo hi", "'a b'", "c", remote_name="probe.sh", includes=[include])
    run(command.co_run(node))
    (files,) = node.installed
    assert [(name, mode) for name, _, mode in files] == [("probe.sh", 0o700), ("lib.sh", 0o600)]
    assert files[0][1] == b"echo hi"
    # run from the login directory; the arguments joined, as upstream
    assert node.shell == [f"{shlex.quote('/tmp/apssh-x y/probe.sh')} 'a b' c"]
    assert node.removed == ["/tmp/apssh-x y"]
    assert command.describe() == "probe.sh 'a b' c"
    quoted = RunString.quoted("echo hi", "a b", "$x", remote_name="probe.sh")
    run(quoted.co_run(node))
    assert node.shell[-1] == f"{shlex.quote('/tmp/apssh-x y/probe.sh')} 'a b' '$x'"


class SlowNode(FakeNode):
    """Installing takes 0.75 of the limit, and so does running: 1.5 limits in all."""

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str:
        jump(75)
        return await super().install_files(files)

    async def run_shell(
        self,
        command: str,
        *,
        display: str,
        timeout: float | None = None,
        verbose: bool = False,
        **extra: object,
    ) -> CommandResult:
        self.shell.append(command)
        jump(75)
        for _ in range(10):  # the overdue deadline fires within a few loop turns
            await asyncio.sleep(0)
        return CommandResult(display, 0)


def test_run_string_timeout_bounds_install_and_run_together() -> None:
    node = SlowNode()
    with pytest.raises(CommandTimeoutError) as info:
        run_with_clock(RunString("sleep 1", timeout=100).co_run(node))
    assert info.value.timeout == 100
    assert len(node.shell) == 1
    assert node.removed == ["/tmp/apssh-x y"]


def test_run_string_rejects_a_path_as_name() -> None:
    with pytest.raises(ValueError):
        RunString("true", remote_name="../x")


def test_run_script_missing_file_is_a_config_error(tmp_path: Path) -> None:
    node = FakeNode()
    with pytest.raises(ConfigError, match="script not found"):
        run(RunScript(tmp_path / "nope.sh").co_run(node))
    assert node.installed == []


def test_run_script_duplicate_names_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    script = tmp_path / "s.sh"
    script.write_text("true\n")
    (tmp_path / "a" / "s.sh").write_text("true\n")
    with pytest.raises(ConfigError, match="distinct names"):
        run(RunScript(script, includes=[tmp_path / "a" / "s.sh"]).co_run(FakeNode()))


def test_push_pull_labels() -> None:
    assert Push(["a", "b"], "/tmp/").describe() == "push a b -> /tmp/"
    assert Pull("/etc/hostname", "out").describe() == "pull /etc/hostname -> out"


@pytest.mark.parametrize("sessions", [0, 65, True, -1])
def test_push_sessions_out_of_range_are_refused(sessions: int) -> None:
    with pytest.raises(ConfigError, match="sessions must be a number from 1 to 64"):
        Push("a", "/tmp/", sessions=sessions)


def test_transfers_need_an_ssh_node() -> None:
    with pytest.raises(ConfigError, match="needs an SshNode"):
        run(Push("a", "/tmp").co_run(LocalNode()))


# ----------------------------------------------------------------- LocalNode


def test_local_run_streams_stdout_stderr_and_rc() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture, label="me")
    result = run(Run("printf 'a\\nb'; echo err >&2; printf '\\377\\n'; exit 4").co_run(node))
    assert result.rc == 4
    assert result.stderr_tail == "err"
    assert capture.lines("me") == ["a", "b\ufffd"]
    assert capture.stderr("me") == "err\n"


def test_local_run_joined_expands_and_quoted_does_not() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    run(Run("printf", "'%s|'", "$(echo a b)").co_run(node))
    run(Run.quoted("printf", "%s|", "a b", "$HOME").co_run(node))
    assert capture.lines("localhost") == ["a|b|", "a b|$HOME|"]


def test_local_run_script_runs_in_login_dir_with_include_and_cleanup(tmp_path: Path) -> None:
    script = tmp_path / "probe.sh"
    script.write_text(
        '#!/bin/sh\n. "$(dirname "$0")/lib.sh"\necho "$GREETING $1 $2"\n'
        'dirname "$0"\npwd\necho kept > rawdata\n'
    )
    (tmp_path / "lib.sh").write_text("GREETING=hello\n")
    workdir = tmp_path / "login"
    workdir.mkdir()
    capture = CaptureFormatter()
    here = os.getcwd()
    os.chdir(workdir)  # a LocalNode's "login directory" is the current one
    try:
        result = run(
            RunScript(script, "big", "world", includes=[tmp_path / "lib.sh"]).co_run(
                LocalNode(formatter=capture)
            )
        )
    finally:
        os.chdir(here)
    assert result.rc == 0
    greeting, directory, cwd = capture.lines("localhost")
    assert greeting == "hello big world"
    assert os.path.basename(directory).startswith("apssh-")
    assert not os.path.exists(directory)  # the private directory is gone...
    assert cwd == str(workdir)
    assert (workdir / "rawdata").read_text() == "kept\n"  # ...what the script wrote is not


def test_capture_stores_stdout_and_a_deferred_uses_it() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    env = Variables()
    first = Run("echo from-first; echo oops >&2", capture=Capture("first", env))
    second = Run(Deferred("echo got {{first}} {{ 1 + 2 }}", env), capture=Capture("second", env))
    run(first.co_run(node))
    run(second.co_run(node))
    assert env.first == "from-first" and env["second"] == "got from-first 3"
    assert capture.lines("localhost") == []  # captured output is not printed...
    assert capture.stderr("localhost") == "oops\n"  # ...but errors are


def test_capture_is_bounded_in_bytes_and_says_it_was_cut() -> None:
    # Run(capture=...) was unbounded: now the lines that fit, in bytes, and truncated=True
    from apssh_cli.output import DEFAULT_CAPTURE_BYTES
    from apssh_cli.recipe.model import CAPTURE_LIMIT

    assert Capture("x", {}).max_bytes == DEFAULT_CAPTURE_BYTES == CAPTURE_LIMIT
    node = LocalNode(formatter=CaptureFormatter())
    env: dict[str, str] = {}
    small = Capture("small", env, max_bytes=7)
    run(Run("printf 'é1\\né2\\né3\\n'", capture=small).co_run(node))
    assert env["small"] == "é1" and small.truncated  # 4 bytes, then 8 > 7 (in characters: 6)
    whole = Capture("whole", env)
    run(Run("seq 3", capture=whole).co_run(node))
    assert env["whole"] == "1\n2\n3" and not whole.truncated
    big = Capture("big", env)
    run(Run("head -c 1200000 /dev/zero | tr '\\0' 'x' | fold -w 1000", capture=big).co_run(node))
    assert big.truncated and len(env["big"].encode()) <= DEFAULT_CAPTURE_BYTES
    assert set(env["big"].split("\n")) == {"x" * 1000}  # whole lines only


def test_ignore_outputs_and_x11_reach_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    node = FakeNode()
    run(Run("daemon", ignore_outputs=True, x11=True).co_run(node))
    assert node.shell == ["{ daemon\n} </dev/null >/dev/null 2>&1"]
    assert node.extras == [{"x11": True}]
    capture = CaptureFormatter()
    result = run(Run("echo hidden", ignore_outputs=True).co_run(LocalNode(formatter=capture)))
    assert result.rc == 0 and capture.lines("localhost") == []
    monkeypatch.delenv("DISPLAY")
    with pytest.raises(ConfigError, match="DISPLAY is not set"):
        run(Run("xterm", x11=True).co_run(node))  # nothing ran
    assert len(node.shell) == 1
    assert run(Run("true", x11=True).co_run(LocalNode())).rc == 0  # local: inherited


def test_local_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # the shell starts a grandchild in the background and waits: both must die
    command = Run(
        f"sleep 300 & echo $! > {pidfile}.new && mv {pidfile}.new {pidfile}; echo started; wait"
    )
    capture = CaptureFormatter()

    async def scenario() -> None:
        running = asyncio.ensure_future(command.co_run(LocalNode(formatter=capture), timeout=3600))
        # the clock jumps only once the deadline is set: the process starts before it,
        # and may write its pid file first; its output is streamed only within it
        while not pidfile.exists() or capture.lines("localhost") != ["started"]:
            await asyncio.sleep(0.02)
        jump(3600)
        await running

    with pytest.raises(CommandTimeoutError) as info:
        run_with_clock(scenario())
    assert info.value.timeout == 3600
    assert dies(int(pidfile.read_text()))


def test_local_cancellation_kills_and_cleans(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    dirfile = tmp_path / "dir"
    body = f'#!/bin/sh\ndirname "$0" > {dirfile}\nsleep 300 & echo $! > {pidfile}\nwait\n'

    async def scenario() -> None:
        task = asyncio.ensure_future(
            RunString(body).co_run(LocalNode(formatter=CaptureFormatter()))
        )
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert dies(int(pidfile.read_text()))
    assert not os.path.exists(dirfile.read_text().strip())


class Events(CaptureFormatter):
    """Records the command events it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def command_started(self, host: str, command: str) -> None:
        self.events.append(("start", command))

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self.events.append(("done", command))


def test_a_verbose_command_reports_itself_even_in_a_quiet_job() -> None:
    events = Events()
    node = LocalNode(formatter=events)
    run(Run("true").co_run(node))
    run(Run("echo", "x", verbose=True).co_run(node))
    env = Variables()
    run(Run("echo y", verbose=True, capture=Capture("y", env)).co_run(node))
    assert events.events == [
        ("start", "echo x"),
        ("done", "echo x"),
        ("start", "echo y"),
        ("done", "echo y"),
    ]
    assert env.y == "y"


def test_push_largest_file_walks_trees_only_when_recursive(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "big").write_bytes(b"x" * 5000)
    (tmp_path / "tree" / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "small").write_bytes(b"x" * 10)
    tree, small = tmp_path / "tree", tmp_path / "small"
    assert Push([small, tree], "/tmp/", recurse=True).largest_file() == 5000
    assert Push([small, tree], "/tmp/").largest_file() == 10
    assert Push(tmp_path / "missing", "/tmp/").largest_file() == 0
