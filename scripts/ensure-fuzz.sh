#!/bin/sh
# Installs the differential oracle of the HTTP/1.1 fuzz tests (host/src/http/fuzz.rs) when it
# is missing: h11 (PyPI), an independent pure-Python HTTP/1.1 parser, in a virtualenv under
# ${CARGO_TARGET_DIR:-<repo>/target}/fuzz/venv, so nothing outside the build tree is touched and
# `cargo clean` removes it. The version is pinned: a new h11 is a deliberate bump (its answers
# decide which disagreements the differential test has to explain).
#
#   sh scripts/ensure-fuzz.sh          install what is missing, print the venv's python
#
# Needs python3 with venv; on Debian python3-venv is installed (apt-get) when it is missing.
# Prints `python=<path>` last; exit status 1 with a message saying what failed otherwise.
set -eu

H11_VERSION=0.16.0

repo_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
case ${CARGO_TARGET_DIR:-} in
'') fuzz_dir=$repo_dir/target/fuzz ;;
/*) fuzz_dir=$CARGO_TARGET_DIR/fuzz ;;
*) fuzz_dir=$repo_dir/$CARGO_TARGET_DIR/fuzz ;;
esac
venv=$fuzz_dir/venv
python=$venv/bin/python3

fail() {
    echo "ensure-fuzz: $*" >&2
    exit 1
}

# Debian's python3 has no venv (nor ensurepip) until python3-venv is installed.
install_venv_package() {
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        fail "python3 -m venv failed and installing python3-venv needs root (apt-get install python3-venv)"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "python3 -m venv failed (install the venv module of python3)"
    echo "ensure-fuzz: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
}

if [ "$("$python" -c 'import h11; print(h11.__version__)' 2>/dev/null || true)" != "$H11_VERSION" ]; then
    command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (apt-get install python3 python3-venv)"
    echo "ensure-fuzz: installing h11 $H11_VERSION into $venv" >&2
    mkdir -p -- "$fuzz_dir"
    rm -rf -- "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf -- "$venv"
        install_venv_package
        python3 -m venv "$venv" || fail "python3 -m venv failed (apt-get install python3-venv)"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "h11==$H11_VERSION" ||
        fail "pip could not install h11 $H11_VERSION from PyPI"
fi

echo "python=$python"
