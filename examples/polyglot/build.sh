#!/bin/sh
# Builds the handlers written in other languages and lays them out as a routes tree.
#
#   sh examples/polyglot/build.sh [ROUTES_DIR]
#
# ROUTES_DIR defaults to ${CARGO_TARGET_DIR:-<repo>/target}/polyglot/routes. The toolchains
# (componentize-py from PyPI, componentize-js from npm) are installed by
# scripts/ensure-polyglot.sh into target/polyglot first if missing. A component is rebuilt only
# when its source (or wit/) is newer than it. Routes:
#
#   py/greet/{name}/GET.wasm   python-hooks: Python against our `handler` world (before/after, JSON, kv)
#   py-wasi/{word}/ANY.wasm    python-wasi:  Python as a standard wasi:http/proxy component
#   js/notes/ANY.wasm          js-hooks:     JavaScript against our `handler` world (JSON body, kv)
#
# The Rust wasi:http example (examples/handlers/wasi_hello) is built by examples/build.sh.
set -eu

polyglot_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo_dir=$(dirname -- "$(dirname -- "$polyglot_dir")")
case ${CARGO_TARGET_DIR:-} in
'') target_dir=$repo_dir/target ;;
/*) target_dir=$CARGO_TARGET_DIR ;;
*) target_dir=$repo_dir/$CARGO_TARGET_DIR ;;
esac
out_dir=$target_dir/polyglot/out
routes_dir=${1:-$target_dir/polyglot/routes}

tools=$(sh "$repo_dir/scripts/ensure-polyglot.sh")
componentize_py=$(echo "$tools" | sed -n 's/^componentize-py=//p')
componentize_js=$(echo "$tools" | sed -n 's/^componentize-js=//p')

# The WASI 0.2 WIT that wasmtime-wasi-http ships (the version the host implements), for the
# Python wasi:http component; cargo has it in its registry once the host's dependencies are
# fetched (`cargo metadata` fetches them if needed).
wasi_wit() {
    cargo metadata --quiet --format-version 1 --manifest-path "$repo_dir/host/Cargo.toml" |
        python3 -c '
import json, os, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == "wasmtime-wasi-http":
        print(os.path.join(os.path.dirname(package["manifest_path"]), "wit"))
        break
else:
    sys.exit("wasmtime-wasi-http is not a dependency of the host")
'
}

# up_to_date OUTPUT INPUT...: OUTPUT exists and is newer than every INPUT (files or folders).
up_to_date() {
    output=$1
    shift
    [ -f "$output" ] || return 1
    [ -z "$(find "$@" -newer "$output" -type f 2>/dev/null | head -n 1)" ]
}

mkdir -p -- "$out_dir"

# Python, our world: componentize-py reads app.py from the example's folder.
if ! up_to_date "$out_dir/python-hooks.wasm" "$polyglot_dir/python-hooks" "$repo_dir/wit"; then
    echo "polyglot: building python-hooks (componentize-py)" >&2
    "$componentize_py" -q -d "$repo_dir/wit" -w handler componentize \
        -p "$polyglot_dir/python-hooks" app -o "$out_dir/python-hooks.wasm.tmp"
    mv -f -- "$out_dir/python-hooks.wasm.tmp" "$out_dir/python-hooks.wasm"
fi

# Python, wasi:http/proxy.
if ! up_to_date "$out_dir/python-wasi.wasm" "$polyglot_dir/python-wasi"; then
    echo "polyglot: building python-wasi (componentize-py, wasi:http/proxy)" >&2
    wit=$(wasi_wit)
    "$componentize_py" -q -d "$wit" -w wasi:http/proxy@0.2.12 componentize \
        -p "$polyglot_dir/python-wasi" app -o "$out_dir/python-wasi.wasm.tmp"
    mv -f -- "$out_dir/python-wasi.wasm.tmp" "$out_dir/python-wasi.wasm"
fi

# JavaScript, our world, componentize-js's default features (its fetch support imports
# wasi:http/types, which the host links for every component).
if ! up_to_date "$out_dir/js-hooks.wasm" "$polyglot_dir/js-hooks" "$repo_dir/wit"; then
    echo "polyglot: building js-hooks (componentize-js)" >&2
    "$componentize_js" "$polyglot_dir/js-hooks/app.js" --wit "$repo_dir/wit" --world-name handler \
        -o "$out_dir/js-hooks.wasm.tmp" >/dev/null
    mv -f -- "$out_dir/js-hooks.wasm.tmp" "$out_dir/js-hooks.wasm"
fi

install_route() {
    mkdir -p -- "$routes_dir/$(dirname -- "$2")"
    cp -- "$out_dir/$1.wasm" "$routes_dir/$2"
}
mkdir -p -- "$routes_dir"
find "$routes_dir" -type f -name '*.wasm' -exec rm -f -- {} +
install_route python-hooks 'py/greet/{name}/GET.wasm'
install_route python-wasi 'py-wasi/{word}/ANY.wasm'
install_route js-hooks 'js/notes/ANY.wasm'
echo "installed 3 polyglot routes into $routes_dir"
