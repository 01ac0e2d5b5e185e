#!/bin/bash
# relay_client.sh ADDR PORT MESSAGE: send MESSAGE to the relay server, print its answer.
# The server may still be starting: try for a few seconds.
addr=${1:?address} port=${2:?port} message=${3:?message}
for _ in $(seq 50); do
    if exec 3<>"/dev/tcp/$addr/$port"; then
        echo "$message" >&3
        read -r -t 5 reply <&3 || { echo "no reply from $addr:$port" >&2; exit 1; }
        exec 3>&-
        echo "$reply"
        exit 0
    fi 2>/dev/null
    sleep 0.1
done
echo "cannot reach $addr:$port" >&2
exit 1
