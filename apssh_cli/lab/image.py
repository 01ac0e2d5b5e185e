"""The sshd image: named after the files that make it, built from the package's own copy.

Those files (Dockerfile, sshd_config, entrypoint and the build-image script) are
package data in ``apssh_cli/lab/sshd_image/``, so a wheel installed anywhere can
build the image; the repository's ``docker/build-image`` runs the same script.
Both name the image ``apssh-cli-sshd:<hash of those four files>``, so either finds
what the other built.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from apssh_cli.lab.client import docker_client, docker_module
from apssh_cli.lab.model import LabError

IMAGE_REPOSITORY = "apssh-cli-sshd"
IMAGE_FILES = ("Dockerfile", "sshd_config", "entrypoint", "build-image")  # what the tag hashes
BUILD_SCRIPT = "build-image"


def image_context() -> Path:
    """The directory holding the image's files (the docker build context)."""
    return Path(__file__).resolve().with_name("sshd_image")


def image_name(context: Path | None = None) -> str:
    """The image's name for the files in context: ``apssh-cli-sshd:<12 hex digits>``.

    The digits are those `build-image --print-name` prints: the sha256 of the lines
    ``sha256sum`` writes for IMAGE_FILES ("<hex>  <name>"), cut to 12.
    """
    context = context or image_context()
    listing = "".join(
        f"{hashlib.sha256((context / name).read_bytes()).hexdigest()}  {name}\n"
        for name in IMAGE_FILES
    )
    return f"{IMAGE_REPOSITORY}:{hashlib.sha256(listing.encode()).hexdigest()[:12]}"


def ensure_image(client: Any | None = None) -> str:
    """Return the name of the sshd image, building it first when needed.

    $APSSH_LAB_IMAGE wins. Otherwise the image of the packaged files is used when
    the engine has it, and built by the packaged build-image script when not (which
    needs bash and the docker command; see docs/testing.md for its base image).

    Raises:
        LabError: no engine, or the build failed.
    """
    if os.environ.get("APSSH_LAB_IMAGE"):
        return os.environ["APSSH_LAB_IMAGE"]
    client = client or docker_client()
    wanted = image_name()
    try:
        client.images.get(wanted)
        return wanted
    except docker_module().errors.ImageNotFound:
        pass
    script = image_context() / BUILD_SCRIPT
    try:
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise LabError(
            f"cannot build the sshd image {wanted}: bash is not installed",
            hint="install bash and the docker command, or set APSSH_LAB_IMAGE to an image",
        ) from exc
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines:
        raise LabError(
            f"building the sshd image failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:]}",
            hint=f"run `bash {script}` to see why",
        )
    if lines[-1] != wanted:  # the script and image_name() hash the same files
        raise LabError(f"build-image made {lines[-1]}, expected {wanted}")
    return wanted
