# Sourced by the wasm scripts: builds for wasm32-unknown-unknown with Debian's rustc-web and
# cargo-web (1.96, /usr/bin; rustup's toolchains here have only the x86_64 standard library and
# cannot download another), the standard library rebuilt from rust-web-src (-Zbuild-std, hence
# RUSTC_BOOTSTRAP=1), into target/wasm so the normal build's target/ is never touched.
# Nothing is put on PATH: rustup's cargo and rustc stay the ones `cargo` runs.
# On a machine whose rustup can add targets: `rustup target add wasm32-unknown-unknown` and
# WASM_CARGO=cargo WASM_BUILD_STD= (no -Zbuild-std needed).
WASM_CARGO="${WASM_CARGO:-/usr/bin/cargo}"
WASM_RUSTC="${WASM_RUSTC:-/usr/bin/rustc}"
WASM_BUILD_STD="${WASM_BUILD_STD--Zbuild-std=std,panic_abort}"
export CARGO_TARGET_DIR="$PWD/target/wasm"

# Runs the wasm32 cargo with the same environment as every build here.
wasm_cargo() {
  RUSTC="$WASM_RUSTC" RUSTDOC="${WASM_RUSTC%rustc}rustdoc" RUSTC_BOOTSTRAP=1 \
    "$WASM_CARGO" "$@" $WASM_BUILD_STD --target wasm32-unknown-unknown --release
}
