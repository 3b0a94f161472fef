#!/bin/sh
# Installs the foreign-language toolchains of the polyglot examples when they are missing:
#   componentize-py (PyPI) in a virtualenv, componentize-js (npm) in a node prefix,
# both under ${CARGO_TARGET_DIR:-<repo>/target}/polyglot, so nothing outside the build tree is
# touched and `cargo clean` removes them. Versions are pinned: a new release is a deliberate bump.
#
#   sh scripts/ensure-polyglot.sh          install what is missing, print the tool paths
#
# Needs python3 (with venv) and npm; a machine without them gets a message saying what to
# install, and exit status 1.
set -eu

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0

repo_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
case ${CARGO_TARGET_DIR:-} in
'') tools_dir=$repo_dir/target/polyglot ;;
/*) tools_dir=$CARGO_TARGET_DIR/polyglot ;;
*) tools_dir=$repo_dir/$CARGO_TARGET_DIR/polyglot ;;
esac
venv=$tools_dir/venv
node_prefix=$tools_dir/node

fail() {
    echo "ensure-polyglot: $*" >&2
    exit 1
}

mkdir -p -- "$tools_dir"

# Python: componentize-py in its own virtualenv.
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (apt-get install python3 python3-venv)"
    echo "ensure-polyglot: installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    python3 -m venv "$venv" || fail "python3 -m venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        fail "pip could not install componentize-py $COMPONENTIZE_PY_VERSION from PyPI"
fi

# JavaScript: componentize-js in a private node prefix. (Its own CLI, not `jco componentize`:
# jco 1.35's wrapper fails to read the WIT path on this Node, "failed to get path metadata".)
js_package=$node_prefix/node_modules/@bytecodealliance/componentize-js/package.json
if ! grep -qs "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$js_package"; then
    command -v npm >/dev/null 2>&1 || fail "npm is not installed (apt-get install nodejs npm)"
    echo "ensure-polyglot: installing componentize-js $COMPONENTIZE_JS_VERSION into $node_prefix" >&2
    mkdir -p -- "$node_prefix"
    [ -f "$node_prefix/package.json" ] || echo '{ "private": true }' >"$node_prefix/package.json"
    npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >&2 ||
        fail "npm could not install componentize-js $COMPONENTIZE_JS_VERSION from the npm registry"
fi

echo "componentize-py=$venv/bin/componentize-py"
echo "componentize-js=$node_prefix/node_modules/.bin/componentize-js"
