"""`python -m apssh_cli ...` is `apssh ...` (for a venv whose scripts are not on PATH)."""

from __future__ import annotations

from apssh_cli.cli.launch import main

if __name__ == "__main__":
    main()
