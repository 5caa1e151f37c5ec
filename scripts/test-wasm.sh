#!/usr/bin/env bash
# The wasm checks of the README test command: core and host build for wasm32-unknown-unknown (a
# dependency that breaks wasm fails here), runtime-wasm and its JS bindings are built
# (scripts/build-wasm.sh), then its Node tests and the Worker's end-to-end test under workerd
# run against the mock provider server. Tools: scripts/install-wasm-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --manifest-path runtime-wasm/Cargo.toml -- --check
bash scripts/build-wasm.sh
cargo build -q -p f3dx-router-testkit --bin f3dx-mock-provider
(cd runtime-wasm && node --test tests/)
(cd examples/worker && node --test test/)
