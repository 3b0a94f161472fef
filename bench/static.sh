#!/bin/sh
# make bench-static: a 1 GiB static file download (MB/s, host peak RSS), next to nginx on the
# same file if nginx is installed (or installable: Debian's nginx-light), and hello-world
# requests/s over HTTPS next to plain HTTP (wrk, 64 connections, 10 s). Prints figures only.
set -eu
host=$1 routes=$2
work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as another user
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT

mkdir -p "$work/static"
head -c 1073741824 /dev/urandom > "$work/static/big.bin"
chmod -R a+rX "$work/static"

# Starts wasm-host with extra args; sets $url.
start() {
  out="$work/out.$$.$(date +%s%N)"
  RUST_LOG=warn "$host" run "$routes" --listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
  pid=$!
  pids="$pids $pid"
  i=0
  until grep -q "listening on" "$out"; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "server did not start"; exit 1; }; sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$out")
}

download() { # url -> MB/s (best of 3)
  best=0
  for _ in 1 2 3; do
    bps=$(curl -sk -o /dev/null -w '%{speed_download}' "$1")
    best=$(python3 -c "print(max($best, $bps / 1e6))")
  done
  printf '%.0f' "$best"
}

start --static "$work/static"
echo "wasm-host  1 GiB static download: $(download "$url/big.bin") MB/s, host peak RSS $(awk '/VmHWM/ {print $2 " " $3}' /proc/$pid/status)"
kill $pid

if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing nginx-light for the comparison (apt-get, at most 5 minutes)..."
  timeout 300 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light' \
    >/dev/null 2>&1 || echo "could not install nginx-light"
fi
if command -v nginx >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:$port; root $work/static; }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work" &
  pids="$pids $!"
  i=0
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "nginx did not start"; break; }; sleep 0.1
  done
  echo "nginx      1 GiB static download: $(download "http://127.0.0.1:$port/big.bin") MB/s (sendfile on)"
else
  echo "nginx      not installed: no comparison"
fi
rm -f "$work/static/big.bin"

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
for mode in plain tls; do
  if [ $mode = tls ]; then
    start --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
  else
    start
  fi
  rps=$(wrk -t2 -c64 -d10s "$url/hello-world" | awk '/Requests\/sec/ {print $2}')
  echo "hello world over $mode: $rps req/s (wrk, 64 keep-alive connections)"
  kill $pid
done
