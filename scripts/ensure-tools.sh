#!/bin/sh
# Installs the Debian packages the test suite and benchmarks need when they are missing.
#   scripts/ensure-tools.sh redis chromium wrk slowhttptest
# Each name is a tool; a tool already on PATH is left alone. Needs root (or sudo) and the
# Debian archive; `apt-get update` runs first because a fresh machine has no package lists.
set -eu

packages=""
for tool in "$@"; do
    case "$tool" in
        redis) command -v redis-server >/dev/null 2>&1 || packages="$packages redis-server" ;;
        chromium)
            command -v chromium >/dev/null 2>&1 || packages="$packages chromium"
            command -v chromedriver >/dev/null 2>&1 || packages="$packages chromium-driver"
            ;;
        wrk) command -v wrk >/dev/null 2>&1 || packages="$packages wrk" ;;
        slowhttptest) command -v slowhttptest >/dev/null 2>&1 || packages="$packages slowhttptest" ;;
        *) echo "ensure-tools: unknown tool '$tool' (known: redis chromium wrk slowhttptest)" >&2; exit 2 ;;
    esac
done
[ -z "$packages" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "ensure-tools: need root to install:$packages" >&2; exit 1
fi
echo "ensure-tools: installing$packages" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # the package list is meant to split
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
