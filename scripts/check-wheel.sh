#!/usr/bin/env bash
# The wheel works where its users are: built from this checkout, installed into a fresh
# virtualenv outside it, and run from a directory that has nothing of the checkout.
#
#   scripts/check-wheel.sh            # PYTHON=path/to/python to build with another one
#
# Steps: build the wheel; install it (its default dependencies, no [docker]); then, from an
# empty temporary directory: `redis-cluster-harness impls`, the conformance suite against
# the default implementation, the examples/ project with plain `pytest`, the suites through
# `pytest --pyargs`, and a user's own profiles file (a good one selected by --impl, a
# broken one refused). Everything lives in one temporary directory, removed on exit.
# Needs redis-server on PATH and a package index for the dependencies.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'echo "check-wheel: FAILED: $STEP" >&2' ERR
START=$SECONDS
STEP=""

step() {
    STEP=$*
    echo
    echo "== check-wheel: $* ($((SECONDS - START)) s)"
}

step "build the wheel from a copy of the sources (nothing written into the checkout)"
mkdir "$WORK/src"
tar -C "$ROOT" --exclude=__pycache__ -cf - pyproject.toml README.md harness suites fixtures |
    tar -C "$WORK/src" -xf -
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WORK/dist" "$WORK/src"
WHEEL=$(echo "$WORK"/dist/redis_cluster_harness-*.whl)
basename "$WHEEL"

step "install it into a fresh virtualenv outside the repository"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$WHEEL"
BIN=$WORK/venv/bin
export PATH="$BIN:$PATH"
unset PYTHONPATH PYTEST_ADDOPTS PYTEST_PLUGINS HARNESS_PROFILES HARNESS_FIXTURES VIRTUAL_ENV
mkdir "$WORK/cwd" "$WORK/reports"
cd "$WORK/cwd"

step "the harness is imported from the virtualenv, not the checkout"
"$BIN/python" - "$ROOT" <<'EOF'
import sys
from pathlib import Path

import harness
from harness.shipped import data_dir

where = Path(harness.__file__).resolve()
print(where)
assert where.is_relative_to(Path(sys.prefix).resolve()), f"harness from {where}"
assert not where.is_relative_to(Path(sys.argv[1])), f"harness from the checkout: {where}"
for name in ("suites", "fixtures"):
    assert data_dir(name).is_relative_to(where.parent), data_dir(name)
EOF

step "redis-cluster-harness impls"
redis-cluster-harness impls

step "redis-cluster-harness run --suite conformance (the default implementation)"
redis-cluster-harness run --suite conformance --report-dir "$WORK/reports/conformance"
test -s "$WORK/reports/conformance/summary.json"

step "the examples/ project with plain pytest, in a copy of its own"
cp -r "$ROOT/examples/my-server-ci" "$WORK/my-server-ci"
rm -rf "$WORK/my-server-ci/reports"
(cd "$WORK/my-server-ci" && "$BIN/pytest" --report-dir "$WORK/reports/example")

step "pytest --pyargs harness.suites: every suite collects, conformance runs"
"$BIN/pytest" -p no:cacheprovider --pyargs harness.suites --collect-only -q | tail -n 1
"$BIN/pytest" -p no:cacheprovider --pyargs harness.suites.conformance \
    --report-dir "$WORK/reports/pyargs"

step "a user's profiles file: listed, and selected with --impl"
VERSION=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
read -r MAJOR MINOR <<<"$VERSION"
cat >"$WORK/cwd/my-profiles.toml" <<EOF
[profiles."my-fork"]
flavor = "redis"
versions = ">=$MAJOR.$MINOR,<$MAJOR.$((MINOR + 1))"
binaries = ["redis-server"]
capabilities = ["cluster_shards", "addslotsrange", "manual_failover"]
EOF
redis-cluster-harness impls --profiles my-profiles.toml | grep '^my-fork .*profile my-fork'
redis-cluster-harness run --profiles my-profiles.toml --impl my-fork --suite conformance \
    --report-dir "$WORK/reports/my-fork" -- -k keyslot
"$BIN/python" -c 'import json, sys; impl = json.load(open(sys.argv[1]))["implementation"]
assert impl["name"] == "my-fork", impl' "$WORK/reports/my-fork/summary.json"

step "a broken profiles file: one line per mistake, exit 2, no traceback"
printf '[profiles.x]\nflavor = "redis"\nversions = "7"\ncapabilities = ["time_travel"]\n' \
    >"$WORK/cwd/broken.toml"
CODE=0
redis-cluster-harness impls --profiles broken.toml 2>"$WORK/err" || CODE=$?
cat "$WORK/err"
if [[ $CODE != 2 || $(wc -l <"$WORK/err") != 2 ]] || grep -q Traceback "$WORK/err"; then
    echo "check-wheel: expected exit 2 and two error lines, got exit $CODE" >&2
    exit 1
fi

STEP=""
echo
echo "== check-wheel: passed in $((SECONDS - START)) s"
