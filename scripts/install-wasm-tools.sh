#!/usr/bin/env bash
# Installs what the wasm build and its tests need on a fresh Debian machine (CI runs it from
# .ci/run): Debian's rustc-web, cargo-web and rust-web-src (rustc 1.96 for wasm32 with the
# standard library's source; /usr/bin, beside rustup's tools in ~/.cargo/bin, which stay first
# on PATH), lld-22 (its rust-lld), wasm-bindgen-cli at the version runtime-wasm/Cargo.lock pins,
# and the npm packages (binaryen's wasm-opt, workerd). Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
fi

version=$(grep -A1 '^name = "wasm-bindgen"$' runtime-wasm/Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  # Not --locked: its lock names a webpki-roots the registry here does not carry.
  cargo install -q wasm-bindgen-cli --version "$version"
fi

for dir in runtime-wasm examples/worker; do
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
