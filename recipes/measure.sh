#!/bin/sh
# Time a few small disk writes and leave the samples in a CSV file to pull.
usage="usage: measure.sh [-n SAMPLES] [-s SIZE_MB] [-o FILE] [-h]
  Write SIZE_MB (default 4) to a temporary file SAMPLES times (default 3),
  syncing each time, and append one CSV line per sample to FILE
  (default /tmp/apssh-measure.csv): host,sample,size_mb,micros
example: apssh -i lab.toml -g nodes -s recipes/measure.sh -n 5
         apssh pull -i lab.toml -g nodes /tmp/apssh-measure.csv results/"

samples=3
size=4
output=/tmp/apssh-measure.csv
while [ $# -gt 0 ]; do
    case "$1" in
        -n) samples=${2:?-n needs a number}; shift 2 ;;
        -s) size=${2:?-s needs a size in MB}; shift 2 ;;
        -o) output=${2:?-o needs a file}; shift 2 ;;
        -h|--help) echo "$usage"; exit 0 ;;
        *) echo "measure.sh: unknown argument '$1'" >&2; echo "$usage" >&2; exit 2 ;;
    esac
done
case "$samples$size" in
    *[!0-9]*) echo "measure.sh: -n and -s take whole numbers" >&2; exit 2 ;;
esac

host=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
scratch=$(mktemp "${TMPDIR:-/tmp}/apssh-measure.XXXXXX") || exit 1
trap 'rm -f "$scratch"' EXIT INT TERM
echo "host,sample,size_mb,micros" > "$output" || exit 1
i=1
while [ "$i" -le "$samples" ]; do
    start=$(date +%s%N)
    dd if=/dev/zero of="$scratch" bs=1M count="$size" conv=fsync 2>/dev/null || exit 1
    end=$(date +%s%N)
    micros=$(( (end - start) / 1000 ))
    echo "$host,$i,$size,$micros" >> "$output"
    echo "sample $i: ${size} MB in ${micros} us"
    i=$((i + 1))
done
echo "wrote $samples samples to $output"
