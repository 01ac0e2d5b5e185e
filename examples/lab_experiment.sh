#!/bin/sh
# The node side of lab_experiment.py: one subcommand per step of the experiment.
#   lab_experiment.sh init                 prepare the work directory, print the kernel
#   lab_experiment.sh measure SAMPLES KB   time SAMPLES synced writes of KB KiB each;
#                                          one line per sample in ./rawdata (login dir)
#   lab_experiment.sh summary FILE...      (run locally) mean time per host, in microseconds
set -e
case "$1" in
    init)
        mkdir -p apssh-demo
        echo "kernel $(uname -r)"
        ;;
    measure)
        samples=${2:?measure needs SAMPLES}
        size=${3:?measure needs KB}
        : > rawdata
        i=1
        while [ "$i" -le "$samples" ]; do
            start=$(date +%s%N)
            dd if=/dev/zero of=apssh-demo/blob bs=1024 count="$size" conv=fsync 2>/dev/null
            end=$(date +%s%N)
            echo "$(hostname) $i $(( (end - start) / 1000 ))" >> rawdata
            i=$((i + 1))
        done
        rm -f apssh-demo/blob
        echo "$samples samples in rawdata"
        ;;
    summary)
        shift
        cat "$@" | awk '{ sum[$1] += $3; n[$1]++ }
            END { for (h in sum) printf "%s mean %d us over %d samples\n", h, sum[h] / n[h], n[h] }' \
            | sort
        ;;
    *)
        echo "usage: $0 init | measure SAMPLES KB | summary FILE..." >&2
        exit 2
        ;;
esac
