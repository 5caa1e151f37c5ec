#!/usr/bin/env bash
# Builds runtime-wasm for wasm32-unknown-unknown, and with it core and host (the check that every
# dependency of core still builds for wasm), then its JS bindings (wasm-bindgen, --target web) into
# runtime-wasm/pkg/, shrunk by wasm-opt -Oz when runtime-wasm/node_modules has binaryen's.
# Prints the module's size. Tools: bash scripts/install-wasm-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/wasm-env.sh

# Building the wasm crate builds core and host for wasm32 (one standard library build, with the
# wasm crate's release profile). Not --locked: a dependency added to core is resolved here too
# (its lock keeps every other pin), so that a dependency which cannot build for wasm32 fails
# the build, not the lock file.
wasm_cargo build --manifest-path runtime-wasm/Cargo.toml
wasm-bindgen --target web --out-dir runtime-wasm/pkg \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/f3dx_router_wasm.wasm"
wasm="runtime-wasm/pkg/f3dx_router_wasm_bg.wasm"
echo "wasm-bindgen output: $(wc -c < "$wasm") B"
opt=runtime-wasm/node_modules/.bin/wasm-opt
if [ -x "$opt" ]; then
  "$opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --strip-debug --strip-producers "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "after wasm-opt -Oz: $(wc -c < "$wasm") B"
fi
