#!/bin/sh
# Gather facts about this node, one "key: value" line each.
usage="usage: facts.sh [--brief] [-h]
  Print facts about the node: name, OS, kernel, CPUs, memory, disk, uptime.
  --brief  only the OS and kernel (identical nodes then gather well: apssh -b)
example: apssh -i lab.toml -g nodes -b -s recipes/facts.sh --brief"

brief=
for arg in "$@"; do
    case "$arg" in
        --brief) brief=1 ;;
        -h|--help) echo "$usage"; exit 0 ;;
        *) echo "facts.sh: unknown argument '$arg'" >&2; echo "$usage" >&2; exit 2 ;;
    esac
done

os=unknown
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    os=$(. /etc/os-release && echo "${PRETTY_NAME:-$NAME}")
fi
echo "os: $os"
echo "kernel: $(uname -sr)"
[ -n "$brief" ] && exit 0

echo "hostname: $(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "user: $(id -un)"
echo "arch: $(uname -m)"
echo "cpus: $(nproc 2>/dev/null || grep -c '^processor' /proc/cpuinfo)"
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
echo "memory_mb: $((mem_kb / 1024))"
# df -P: one line per filesystem, whatever the name length
free_kb=$(df -Pk / | tail -n 1 | tr -s ' ' | cut -d' ' -f4)
echo "disk_free_mb: $((free_kb / 1024))"
up=$(cut -d. -f1 /proc/uptime)
echo "uptime_s: $up"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
