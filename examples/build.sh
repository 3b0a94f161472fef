#!/bin/sh
# Builds the example handlers for wasm32-wasip2 and lays them out as a routes tree.
#
#   sh examples/build.sh [ROUTES_DIR]
#
# ROUTES_DIR defaults to examples/routes (next to this script); a relative ROUTES_DIR is taken
# from the current directory. Every line of examples/routes.txt, `<crate> <route path>`, copies
# the component `<crate>.wasm` to `ROUTES_DIR/<route path>`; .wasm files already under
# ROUTES_DIR are removed first, so a route dropped from routes.txt disappears.
#
# Components are built in ${CARGO_TARGET_DIR:-<repo>/target}/guests, the directory the test
# build script (tests/artifacts/build.rs) uses too, so they are compiled once for both. Needs
# only a POSIX shell, cargo, and rustup (to add the wasm32-wasip2 target when missing).
set -eu

examples_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo_dir=$(dirname -- "$examples_dir")
routes_dir=${1:-$examples_dir/routes}
target=wasm32-wasip2

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
fi

# A relative CARGO_TARGET_DIR is taken from the repository root, as tests/artifacts does.
case ${CARGO_TARGET_DIR:-} in
'') target_dir=$repo_dir/target/guests ;;
/*) target_dir=$CARGO_TARGET_DIR/guests ;;
*) target_dir=$repo_dir/$CARGO_TARGET_DIR/guests ;;
esac
CARGO_TARGET_DIR=$target_dir cargo build --release --target "$target" \
    --manifest-path "$examples_dir/Cargo.toml"
artifacts=$target_dir/$target/release

mkdir -p -- "$routes_dir"
find "$routes_dir" -type f -name '*.wasm' -exec rm -f -- {} +
# Remove the folders left empty (rmdir refuses the others, e.g. one holding a README).
find "$routes_dir" -depth -type d ! -path "$routes_dir" -exec rmdir -- {} \; 2>/dev/null || true

count=0
line_number=0
while IFS= read -r line || [ -n "$line" ]; do
    line_number=$((line_number + 1))
    # Fields: crate, route path; blank lines and `#` comments are skipped.
    set -f
    # shellcheck disable=SC2086 # word splitting is the point
    set -- $line
    set +f
    case ${1:-#} in '#'*) continue ;; esac
    if [ $# -ne 2 ]; then
        echo "examples/routes.txt:$line_number: expected '<crate> <route path>', got: $line" >&2
        exit 1
    fi
    component=$artifacts/$1.wasm
    if [ ! -f "$component" ]; then
        echo "examples/routes.txt:$line_number: no component $component (is '$1' a crate of examples/?)" >&2
        exit 1
    fi
    mkdir -p -- "$routes_dir/$(dirname -- "$2")"
    cp -- "$component" "$routes_dir/$2"
    count=$((count + 1))
done <"$examples_dir/routes.txt"

echo "installed $count example routes into $routes_dir"
