"""Check a built sdist and wheel: version, SPDX licence, LICENSE file, py.typed, sshd image files.

Usage: python tests/typed/check_dist.py DIST_DIR (run by `nox -s package`).
"""

from __future__ import annotations

import ast
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_version() -> str:
    tree = ast.parse((ROOT / "apssh_cli" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise SystemExit("apssh_cli/__init__.py defines no __version__")


def main(dist: Path) -> None:
    version = source_version()
    wheels = list(dist.glob(f"apssh_cli-{version}-*.whl"))
    sdists = list(dist.glob(f"apssh_cli-{version}.tar.gz"))
    problems: list[str] = []
    if len(wheels) != 1 or len(sdists) != 1:
        raise SystemExit(f"expected one wheel and one sdist of {version} in {dist}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        meta_name = f"apssh_cli-{version}.dist-info/METADATA"
        meta = Parser().parsestr(wheel.read(meta_name).decode())
    if meta["Version"] != version:
        problems.append(f"wheel version {meta['Version']} != {version}")
    if meta["License-Expression"] != "MIT":
        problems.append(f"License-Expression is {meta['License-Expression']!r}, not 'MIT'")
    if meta["License"]:
        problems.append("the deprecated License field is set")
    for wanted in (
        "apssh_cli/py.typed",
        f"apssh_cli-{version}.dist-info/licenses/LICENSE",
        "apssh_cli/lab/sshd_image/Dockerfile",
    ):
        if wanted not in names:
            problems.append(f"the wheel lacks {wanted}")
    with tarfile.open(sdists[0]) as sdist:
        members = {m.name.split("/", 1)[-1] for m in sdist.getmembers()}
    for wanted in ("LICENSE", "apssh_cli/py.typed", "pyproject.toml"):
        if wanted not in members:
            problems.append(f"the sdist lacks {wanted}")
    if problems:
        raise SystemExit("dist check failed:\n  " + "\n  ".join(problems))
    print(f"dist ok: {wheels[0].name}, {sdists[0].name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
