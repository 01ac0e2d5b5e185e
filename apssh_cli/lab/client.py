"""The Docker client: one per engine address for the process, imported only when needed."""

from __future__ import annotations

import gc
import importlib
import os
import warnings
from typing import Any

from apssh_cli.lab.model import LOCALHOST, LabError

ENGINE_HINT = (
    "run `bash docker/engine` in an apssh-cli checkout (Debian, as root: installs and "
    "starts dockerd), or start Docker Desktop / your distribution's dockerd"
)

_clients: dict[str, Any] = {}  # one client per DOCKER_HOST for the whole process


def docker_client() -> Any:
    """Return a docker-py client to an engine that answers (shared by this process).

    Raises:
        LabError: the lab extra is not installed, or no engine answers.
    """
    try:
        docker = docker_module()
    except ImportError as exc:
        raise LabError(
            "the Docker client library is not installed",
            hint="pip install 'apssh-cli[lab]'",
        ) from exc
    where = os.environ.get("DOCKER_HOST", "")
    failure = ""
    # a client that failed half-way leaks its socket: drop it here, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = _clients.get(where) or docker.from_env()
            client.ping()
        except docker.errors.DockerException as exc:
            failure = first_line(exc)
            _clients.pop(where, None)
            client = None
        if failure:
            gc.collect()
    if client is None:
        raise LabError(f"no Docker engine answers ({failure})", hint=ENGINE_HINT)
    _clients[where] = client
    return client


def docker_module() -> Any:
    """The docker-py module, with docker.errors loaded.

    Imported by name: mypy would otherwise take the repository's docker/ directory for it.
    """
    docker = importlib.import_module("docker")
    importlib.import_module("docker.errors")
    return docker


def quiet_testcontainers() -> None:
    """Set testcontainers up for us before it is imported.

    Ryuk (testcontainers' reaper) cannot be pulled here, and a lab must outlive its
    process anyway: we remove everything ourselves, by label.
    """
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TC_HOST", LOCALHOST)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (docker-py's run over several)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
