#!/bin/bash
# node side of upstream_demo.py: prepare NAME | measure COUNT LABEL...
case "$1" in
    prepare)
        echo "preparing $2 in $(pwd)"
        ;;
    measure)
        count=$2; shift 2
        : > rawdata
        for i in $(seq "$count"); do echo "sample $i $*" >> rawdata; done
        echo "wrote $(wc -l < rawdata) samples"
        ;;
    *)
        echo "usage: $0 prepare NAME | measure COUNT LABEL..." >&2; exit 2
        ;;
esac
