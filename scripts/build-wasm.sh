#!/usr/bin/env bash
# Builds for wasm32-unknown-unknown: core and host (the check that every dependency of core still
# builds for wasm), then runtime-wasm, then its JS bindings (wasm-bindgen, --target web) into
# runtime-wasm/pkg/, shrunk by wasm-opt -Oz when runtime-wasm/node_modules has binaryen's.
# Prints the module's size. Tools: bash scripts/install-wasm-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/wasm-env.sh

wasm_cargo build --locked -p f3dx-router-core -p f3dx-router-host
wasm_cargo build --locked --manifest-path runtime-wasm/Cargo.toml
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
