#!/usr/bin/env bash
# The Python package's checks: build and install the wheel into .venv (created if missing),
# build the mock provider server, then pytest, mypy --strict on the typed example and the
# package, and stubtest on the native module. Idempotent; a re-run rebuilds only what changed.
#
#   F3DX_PY_PROFILE=release bash python/run-tests.sh   # test an optimized wheel (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Satisfied requirements are not fetched again.
"$PY" -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" "pytest>=8,<10" "mypy>=1.18,<3"

# `pip install ./python` is exactly what a user runs (release profile). Tests build the dev
# profile by default: it reuses `cargo test`'s debug dependencies, a cold build is several times
# faster, and nothing here measures speed.
profile="${F3DX_PY_PROFILE:-dev}"
echo "== pip install ./python (profile $profile)"
MATURIN_PEP517_ARGS="--profile $profile" \
    "$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./python

echo "== cargo build f3dx-mock-provider"
cargo build -q -p f3dx-router-testkit --bin f3dx-mock-provider --bin f3dx-test-proxy
export F3DX_MOCK_PROVIDER="${F3DX_MOCK_PROVIDER:-$PWD/target/debug/f3dx-mock-provider}"

echo "== mypy --strict (typed example, package)"
"$PY" -m mypy --strict --no-incremental python/examples/typed_example.py
"$PY" -m mypy --strict --no-incremental -p f3dx_router
echo "== stubtest f3dx_router._native"
"$PY" -m mypy.stubtest f3dx_router._native
echo "== demo"
"$PY" -m f3dx_router demo 300 >/dev/null

echo "== pytest python/tests"
# From the repo root, so `f3dx_router` is the installed package, not the source directory.
"$PY" -m pytest python/tests -q -p no:cacheprovider "$@"
