#!/usr/bin/env bash
# Every check a change must pass: formatting, lints, and every test of every crate (unit tests,
# property tests, the simulator over 1,000 consecutive seeds, spec validation, the drivers'
# conformance suites), then the Python package's (python/run-tests.sh: wheel, pytest against the
# mock provider server, mypy --strict, stubtest). Debug builds only; benches and fuzzing run
# outside this command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
bash python/run-tests.sh
bash scripts/test-wasm.sh
