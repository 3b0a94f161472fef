#!/bin/sh
# make bench: hello-world requests/s and latency at 64 connections (wrk, 10 s), access log off.
set -eu
host=$1 routes=$2
out=$(mktemp)
RUST_LOG=warn "$host" run "$routes" --listen 127.0.0.1:0 >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
i=0
until grep -q "listening on" "$out"; do
  i=$((i + 1)); [ $i -lt 600 ] || { echo "server did not start"; exit 1; }; sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$out")
wrk -t2 -c64 -d10s --latency "$url/hello-world"
