"""Developer tools (not shipped in the package): the docs build, run by `nox -s docs`."""
