"""Developer tasks: `nox` runs lint, typecheck, package, docs, tests and integration (CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "package", "docs", "tests", "integration"]
nox.options.reuse_existing_virtualenvs = True
# uv builds the virtualenvs in seconds where it is installed; virtualenv otherwise
nox.options.default_venv_backend = "uv|virtualenv"
# uv does not write .pyc files at install time (pip does); where the environment also
# sets PYTHONDONTWRITEBYTECODE, every `apssh` start would compile asyncssh again
# (about 0.2 s): the integration tests and the benchmarks start it many times.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")

PYTHON = "3.11"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")
    # a user's script against the editable install: py.typed must be seen through it too
    session.run("mypy", "--strict", "tests/typed/user_script.py")


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """Build sdist and wheel, check what they hold, type-check a user script against the wheel."""
    session.install("build", "mypy")
    out = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(out), silent=True)
    session.run("python", "tests/typed/check_dist.py", str(out))
    wheel = next(out.glob("*.whl"))
    session.install(str(wheel))
    # outside the source tree, so that mypy sees the installed package, not ./apssh_cli
    session.chdir(session.create_tmp())
    here = Path(__file__).parent
    session.run("mypy", "--strict", str(here / "tests/typed/user_script.py"))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Fast unit tests: no network, no Docker."""
    session.install("-e", ".[test]")
    # the examples in the docstrings (a few seconds; the lab's modules import fine without Docker)
    session.run("pytest", "--doctest-modules", "apssh_cli", "tools/manpages.py", "-q")
    session.run("pytest", "-m", "not integration", *session.posargs)


# MkDocs 1.6 with Material 9: the site is built and checked with these. Material is in
# maintenance until 2027-05 (its team moved on to Zensical, which reads the same mkdocs.yml).
DOCS_REQUIREMENTS = ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10", "mkdocstrings[python]>=0.26"]


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The site (build/site, MkDocs strict: a broken link fails) and man pages (build/man)."""
    session.install("-e", ".", *DOCS_REQUIREMENTS, "ruff", "mypy")  # ruff formats signatures
    session.run("mypy", "--strict", "tools")  # the generators, with MkDocs' types at hand
    man_dir = Path("build/man")
    shutil.rmtree(man_dir, ignore_errors=True)
    session.run("python", "tools/manpages.py", str(man_dir))
    _lint_man_pages(session, man_dir)
    # Material >= 9.7 prints an end-of-life notice at every build (said above, once)
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.log("site: build/site/index.html; man pages: man -l build/man/apssh.1")


def _lint_man_pages(session: nox.Session, man_dir: Path) -> None:
    # groff's warnings (-ww) and mandoc's lint (style included) on each page: any message is
    # a failure; a checker that is not installed is said plainly, and skipped
    checkers = {
        "groff": ["-man", "-Tutf8", "-ww", "-z"],
        "mandoc": ["-T", "lint", "-W", "all"],
    }
    for name, options in checkers.items():
        program = shutil.which(name)
        if program is None:
            session.log(f"{name} not found: the man pages were not checked with it")
            continue
        for page in sorted(man_dir.glob("*.1")):
            done = subprocess.run([program, *options, str(page)], capture_output=True, text=True)
            if done.returncode != 0 or done.stderr or (name == "mandoc" and done.stdout):
                session.error(f"{page}: {name}:\n{done.stderr}{done.stdout}")


def _require_docker(session: nox.Session) -> None:
    docker = shutil.which("docker")
    ok = (
        docker is not None
        and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    )
    if not ok:
        session.error(
            "no Docker engine answers (`docker info` failed): run `bash docker/engine` "
            "to install and start one, then retry"
        )


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Container tests against real OpenSSH servers (fails without Docker, never skips)."""
    _require_docker(session)
    # clush: the reference of the stdin differential test (tests/integration/test_cli_stdin.py)
    session.install("-e", ".[test]", "clustershell")
    session.run("bash", "docker/build-image", external=True)
    session.run(
        "pytest",
        "-m",
        "integration",
        *session.posargs,
        env={"TESTCONTAINERS_RYUK_DISABLED": "true", "TC_HOST": "127.0.0.1"},
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: a lab behind a bastion, a command, a script and an experiment, lab down."""
    _require_docker(session)
    session.install("-e", ".[lab]")
    # no build step: `apssh lab up` builds the image from the package's files when needed
    # a lab of its own (state dir and name), removed in `finally` whatever fails
    env = {"APSSH_LAB_DIR": str(Path(session.create_tmp()).resolve() / f"demo-lab-{os.getpid()}")}
    name = f"demo-{os.getpid()}"
    inventory = str(Path(env["APSSH_LAB_DIR"]) / "inventory.toml")
    try:
        session.run("apssh", "lab", "up", "--nodes", "3", "--name", name, env=env)
        session.run("apssh", "-i", inventory, "-g", "nodes", "uptime", env=env)
        session.run("apssh", "-i", inventory, "-g", "nodes", "-s", "recipes/facts.sh", env=env)
        # the library: an experiment in the nepi-ng demos' style on the same lab
        results = str(Path(env["APSSH_LAB_DIR"]) / "results")
        session.run("python", "examples/lab_experiment.py", "-i", inventory, "-o", results)
        # the same kind of experiment as a TOML recipe: a matrix sweep, pulls, a local CSV
        runs = str(Path(env["APSSH_LAB_DIR"]) / "runs")
        session.run(
            "apssh", "recipe", "run", "recipes/sweep.toml", "-i", inventory, "--run-dir", runs,
            env=env,
        )  # fmt: skip
    finally:
        session.run("apssh", "lab", "down", "--name", name, env=env)


BENCH_SCENARIOS = [
    "startup", "inventory", "fanout", "bastion", "transfer", "cpu", "recipe", "persist",
]  # fmt: skip


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, in one run, with a report (not run by CI).

    `nox -s bench` runs every scenario, then writes benchmarks/results/report.md,
    report.json and fanout.png. `nox -s bench -- fanout transfer` runs only those
    (the report keeps the other scenarios' last results); BENCH_QUICK=1 runs smaller
    sizes and fewer rounds.
    """
    _require_docker(session)
    chosen = session.posargs or BENCH_SCENARIOS
    unknown = sorted(set(chosen) - set(BENCH_SCENARIOS))
    if unknown:
        session.error(f"unknown scenario(s) {', '.join(unknown)}; known: {BENCH_SCENARIOS}")
    # not editable: an editable install's import hook adds to every start-up measured
    session.install(".[lab]", "clustershell", "ansible-core", "parallel-ssh", "matplotlib")
    try:  # a peer that may not install everywhere: left out of the comparison then
        session.install("pyinfra")
    except nox.command.CommandFailed:
        session.warn("pyinfra did not install: left out of the recipe comparison")
    _install_debian_peers(session)
    session.run("bash", "docker/build-image", external=True)
    for scenario in chosen:
        session.run("python", f"benchmarks/bench_{scenario}.py")
    session.run("python", "benchmarks/report.py", silent=True)
    session.log("report: benchmarks/results/report.md (and report.json, fanout.png)")


def _install_debian_peers(session: nox.Session) -> None:
    # pdsh and parallel-ssh (Debian's pssh) come from Debian's packages; skipped (and said so)
    # elsewhere
    missing = [tool for tool in ("pdsh", "parallel-ssh") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.warn(f"not installed, left out of the comparison: {', '.join(missing)}")
        return
    install = ["apt-get", "install", "-y", "-qq", "pdsh", "pssh"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run(*install, external=True, env=env)
    except nox.command.CommandFailed:  # a fresh machine: no package lists yet
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run(*install, external=True, env=env)
