#!/bin/sh
# Prepare a node once: a work directory with a marker; --force does it again.
usage="usage: setup.sh [--force] [--dir DIR] [-h]
  Create DIR (default \$HOME/apssh-lab) with a marker file; a node already set
  up is left alone unless --force. Settings are read from setup.conf when it is
  sent along with --include.
example: apssh -i lab.toml -g nodes --include recipes/setup.conf -s recipes/setup.sh --force"

force=
workdir=
here=$(dirname "$0")
# setup.conf (optional, sent with --include) may set WORKDIR and GREETING
if [ -r "$here/setup.conf" ]; then
    # shellcheck disable=SC1091
    . "$here/setup.conf"
elif [ -r ./setup.conf ]; then
    # shellcheck disable=SC1091
    . ./setup.conf
fi
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1; shift ;;
        --dir) workdir=${2:?--dir needs a directory}; shift 2 ;;
        -h|--help) echo "$usage"; exit 0 ;;
        *) echo "setup.sh: unknown argument '$1'" >&2; echo "$usage" >&2; exit 2 ;;
    esac
done
workdir=${workdir:-${WORKDIR:-$HOME/apssh-lab}}
marker="$workdir/.apssh-setup"

if [ -e "$marker" ] && [ -z "$force" ]; then
    echo "already set up in $workdir (use --force to redo)"
    exit 0
fi
mkdir -p "$workdir" || exit 1
echo "${GREETING:-set up by apssh} on $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$marker" || exit 1
echo "set up in $workdir"
