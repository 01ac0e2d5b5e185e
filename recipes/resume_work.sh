#!/bin/sh
# resume_work.sh HOST FAILS_ON FIXED OUTPUT: fail on FAILS_ON until FIXED exists.
host=$1 fails_on=$2 fixed=$3 output=$4
if [ "$host" = "$fails_on" ] && [ ! -e "$fixed" ]; then
    echo "$host is broken: create $fixed on it, then resume" >&2
    exit 1
fi
echo "result of $host at $(date +%T)" > "$output"
echo "work done"
